"""Versions of a job's definition: recorded by the job services after each change, read by the
API and the admin. Our own small model (``jobs.models.JobVersion``), not django-reversion or
django-simple-history: they record from ``save`` signals, and here every write is an explicit
service call (``jobs.services``), which records its version in the same transaction.

Who, through what and why come from ``core.origin`` (set by the request's middleware, or by a
command); a version records the definition (``VERSIONED_FIELDS``, secrets as stored), the fields
that changed since the version before it, and nothing at all when nothing changed.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db.models import OuterRef, QuerySet, Subquery
from django.utils import timezone

from core import origin
from jobs.models import VERSIONED_FIELDS, Job, JobVersion
from jobs.secrets import mask_job_data

if TYPE_CHECKING:
    from jobs.preparation import Actor


#: Versioned fields added after versions began, with the value a job had before it had them: a
#: version recorded before then lacks the key and stands for this value (so the next change does
#: not count the field as changed, and a revert to that version gives it this value).
ADDED_LATER: dict[str, Any] = {"tags": []}


def complete(definition: dict[str, Any]) -> dict[str, Any]:
    """A stored definition with the fields added since it was recorded, at their earlier values."""
    return {
        **{name: list(value) if isinstance(value, list) else value for name, value in ADDED_LATER.items()},
        **definition,
    }


def definition_of(job: Job) -> dict[str, Any]:
    """The job's definition as a version keeps it: JSON, secrets as stored (an export's shape)."""
    data = {name: getattr(job, name) for name in VERSIONED_FIELDS}
    data["run_at"] = job.run_at.isoformat() if job.run_at else None
    return data


def latest_version(job_id: str) -> JobVersion | None:
    return JobVersion.objects.filter(job_id=job_id).order_by("-number").first()


def version_record(job: Job, *, action: str, actor: Actor = None) -> JobVersion | None:
    """Record ``job``'s definition as its next version, with the fields changed since the last
    one; ``None`` (nothing written) when an update changed none. A delete records the definition
    it removed. Called by the services inside their transaction, under the job's lock (updates)
    or its new primary key (creates), so numbers do not race; the unique (job_id, number) is the guard."""
    previous = latest_version(job.pk)
    definition = definition_of(job)
    before = (
        complete(previous.definition) if previous is not None and previous.action != JobVersion.Action.DELETE else {}
    )
    changed = [name for name in VERSIONED_FIELDS if name not in before or before[name] != definition[name]]
    if action == JobVersion.Action.DELETE:
        changed = []
    elif not changed:
        return None
    made = origin.current()
    return JobVersion.objects.create(
        job_id=job.pk,
        number=previous.number + 1 if previous is not None else 1,
        definition=definition,
        changed_fields=changed,
        action=action,
        actor=_actor_name(actor, made),
        source=made.source,
        reason=made.reason,
    )


def _actor_name(actor: Actor, made: origin.Origin) -> str:
    if actor is not None and getattr(actor, "is_authenticated", False):
        return str(actor.get_username())
    return made.actor_name


# --- reading ---------------------------------------------------------------------------------


def versions_of(job_id: str) -> QuerySet[JobVersion]:
    """A job's versions, newest first; a deleted job's too."""
    return JobVersion.objects.filter(job_id=job_id).order_by("-number")


def masked_definition(version: JobVersion) -> dict[str, Any]:
    return mask_job_data(complete(version.definition))


def version_diff(version: JobVersion) -> dict[str, dict[str, Any]]:
    """Each field that differs from the version before (none before: every field), masked:
    ``{"cron": {"before": "*/2 …", "after": "*/5 …"}}``. A delete differs in nothing."""
    if version.action == JobVersion.Action.DELETE:
        return {}
    previous = JobVersion.objects.filter(job_id=version.job_id, number__lt=version.number).order_by("-number").first()
    before = {} if previous is None or previous.action == JobVersion.Action.DELETE else complete(previous.definition)
    after = complete(version.definition)
    shown_before, shown_after = mask_job_data(before), mask_job_data(after)
    return {
        name: {"before": shown_before.get(name), "after": shown_after.get(name)}
        for name in VERSIONED_FIELDS
        if before.get(name, _MISSING) != after.get(name, _MISSING)
    }


_MISSING = object()


def deleted_jobs() -> QuerySet[JobVersion]:
    """The last version of each deleted job (a delete, and no job of that id now), newest first."""
    last = JobVersion.objects.filter(job_id=OuterRef("job_id")).order_by("-number").values("number")[:1]
    return (
        JobVersion.objects.filter(action=JobVersion.Action.DELETE, number=Subquery(last))
        .exclude(job_id__in=Job.objects.values("pk"))
        .order_by("-created_at")
    )


def changed_since(since: datetime) -> QuerySet[JobVersion]:
    return JobVersion.objects.filter(created_at__gte=since)


# --- retention -------------------------------------------------------------------------------


def prune_deleted_versions(*, now: datetime | None = None, days: int | None = None) -> int:
    """Delete the versions of jobs deleted more than ``days`` ago (CRONTASK_VERSION_RETENTION_DAYS):
    after that a deleted job can no longer be restored. A job that exists keeps all its versions.
    Returns how many versions were deleted."""
    days = settings.CRONTASK_VERSION_RETENTION_DAYS if days is None else days
    cutoff = (now or timezone.now()) - timedelta(days=days)
    gone = deleted_jobs().filter(created_at__lt=cutoff).values("job_id")
    deleted, _ = JobVersion.objects.filter(job_id__in=gone).delete()
    return deleted
