"""Versions of a job's definition: recorded by the job services after each change, read by the
API and the admin. Our own small model (``jobs.models.JobVersion``), not django-reversion or
django-simple-history: they record from ``save`` signals, and here every write is an explicit
service call (``jobs.services``), which records its version in the same transaction.

Who, through what and why come from ``core.origin`` (set by the request's middleware, or by a
command); a version records the definition (``VERSIONED_FIELDS``, secrets as stored), the fields
that changed since the version before it, and nothing at all when nothing changed.
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import connection
from django.db.models import Field, Max, OuterRef, QuerySet, Subquery
from django.utils import timezone

from core import origin
from core.bulk_insert import insert_many
from jobs.models import VERSIONED_FIELDS, Job, JobVersion
from jobs.secrets import mask_job_data

if TYPE_CHECKING:
    from jobs.preparation import Actor


def complete(definition: dict[str, Any]) -> dict[str, Any]:
    """A stored definition with the fields added to jobs since it was recorded, at their defaults:
    what the migration that added each gave every job. So a version recorded before a field
    existed stands for the field's default (the next change does not count it as changed, and a
    revert to that version gives it that value)."""
    return {**{name: _default_of(name) for name in VERSIONED_FIELDS if name not in definition}, **definition}


def definition_of(job: Job) -> dict[str, Any]:
    """The job's definition as a version keeps it: JSON, secrets as stored (an export's shape)."""
    data = {name: getattr(job, name) for name in VERSIONED_FIELDS}
    data["run_at"] = _utc_text(job.run_at)
    return data


def _utc_text(moment: datetime | str | None) -> str | None:
    """A ``run_at`` as a version keeps it: ISO 8601 in UTC, whatever zone it arrived in, so the
    same instant written as 13:00+08:00 and 05:00+00:00 is no change."""
    if moment is None:
        return None
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    return moment.astimezone(UTC).isoformat()


def latest_version(job_id: str) -> JobVersion | None:
    return JobVersion.objects.filter(job_id=job_id).order_by("-number").first()


def version_record(job: Job, *, action: str, actor: Actor = None) -> JobVersion | None:
    """Record ``job``'s definition as its next version, with the fields changed since the last
    one; ``None`` (nothing written) when an update changed none. A delete records the definition
    it removed. Called by the services inside their transaction, under the job's lock (updates)
    or its new primary key (creates), so numbers do not race; the unique (job_id, number) is the guard."""
    definition = definition_of(job)
    if action in (JobVersion.Action.CREATE, JobVersion.Action.RESTORE):
        # The usual first version (no version before, or a delete): one INSERT … SELECT that
        # numbers it, not a SELECT of the last version and then an INSERT.
        first = _insert_first_version(job, definition, action=action, actor=actor)
        if first is not None:
            return first
    previous = latest_version(job.pk)
    if previous is None or previous.action == JobVersion.Action.DELETE:
        changed = list(VERSIONED_FIELDS)  # a first version (a create, a restore): all of it is new
    else:
        changed = _changed(_comparable(previous.definition), definition)
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


def _insert_first_version(job: Job, definition: dict[str, Any], *, action: str, actor: Actor) -> JobVersion | None:
    """``job``'s version with every field changed, numbered after the last of its id (1 if none),
    in one statement, if that last version is a delete or there is none; else ``None`` and nothing
    written (a job deleted outside the services: ``version_record`` compares with that version)."""
    if not connection.features.can_return_columns_from_insert:
        return None
    made = origin.current()
    version = JobVersion(
        job_id=job.pk,
        number=0,  # set below, from the database's answer
        definition=definition,
        changed_fields=list(VERSIONED_FIELDS),
        action=action,
        actor=_actor_name(actor, made),
        source=made.source,
        reason=made.reason,
    )
    sql, fields = _first_version_sql()
    values = [field.get_db_prep_save(field.pre_save(version, True), connection) for field in fields]
    with connection.cursor() as cursor:
        cursor.execute(sql, [*values, job.pk, job.pk, JobVersion.Action.DELETE])
        row = cursor.fetchone()
    if row is None:
        return None
    version.pk, version.number = row
    version._state.adding = False
    version._state.db = connection.alias
    return version


@functools.cache
def _first_version_sql() -> tuple[str, list[Field[Any, Any]]]:
    """``_insert_first_version``'s statement (built once) and the fields whose values it inserts."""
    meta = JobVersion._meta
    fields = [field for field in meta.concrete_fields if not field.primary_key and field.name != "number"]
    quote = connection.ops.quote_name
    column = {field.name: quote(str(field.column)) for field in meta.concrete_fields}
    table, number, job_column, action_column = (
        quote(meta.db_table),
        column["number"],
        column["job_id"],
        column["action"],
    )
    columns = ", ".join(column[field.name] for field in fields)
    placeholders = ", ".join(["%s"] * len(fields))
    sql = (
        f"INSERT INTO {table} ({columns}, {number}) SELECT {placeholders}, last.n + 1"  # noqa: S608 (the model's own names)
        f" FROM (SELECT COALESCE(MAX({number}), 0) AS n FROM {table} WHERE {job_column} = %s) AS last"
        f" WHERE NOT EXISTS (SELECT 1 FROM {table} AS v WHERE v.{job_column} = %s AND v.{number} = last.n"
        f" AND v.{action_column} <> %s) RETURNING {column['id']}, {number}"
    )
    return sql, fields


def versions_record_created(jobs: list[Job], *, actor: Actor = None) -> None:
    """``version_record(job, action="create")`` for many new jobs at once (``jobs.bulk``): one query
    for the numbers (an id used by a job deleted before goes on counting), one insert a batch."""
    made = origin.current()
    last = dict(
        JobVersion.objects.filter(job_id__in=[job.pk for job in jobs])
        .values("job_id")
        .annotate(last=Max("number"))
        .values_list("job_id", "last")
    )
    who = _actor_name(actor, made)
    insert_many(
        JobVersion,
        [
            JobVersion(
                job_id=job.pk,
                number=last.get(job.pk, 0) + 1,
                definition=definition_of(job),
                changed_fields=list(VERSIONED_FIELDS),
                action=JobVersion.Action.CREATE,
                actor=who,
                source=made.source,
                reason=made.reason,
            )
            for job in jobs
        ],
    )


def _changed(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """The fields whose values differ (``before`` may be a version's stored definition: see ``complete``)."""
    before = complete(before)
    return [name for name in VERSIONED_FIELDS if before[name] != after[name]]


def _default_of(name: str) -> Any:
    field = Job._meta.get_field(name)
    return field.get_default() if hasattr(field, "get_default") else None  # a fresh list or dict each time


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
    previous = JobVersion.objects.filter(job_id=version.job_id, number__lt=version.number).order_by("-number").first()
    return _diff(version, previous)


def versions_with_diffs(job_id: str, *, offset: int = 0, limit: int = 100) -> list[tuple[JobVersion, dict[str, Any]]]:
    """A page of a job's versions, newest first, each with its ``version_diff``: two queries,
    however many versions the page holds (one more version is read, the one before the page)."""
    read = list(versions_of(job_id)[offset : offset + limit + 1])
    return [
        (version, _diff(version, read[index + 1] if index + 1 < len(read) else None))
        for index, version in enumerate(read[:limit])
    ]


def _diff(version: JobVersion, previous: JobVersion | None) -> dict[str, dict[str, Any]]:
    if version.action == JobVersion.Action.DELETE:
        return {}
    before = {} if previous is None or previous.action == JobVersion.Action.DELETE else complete(previous.definition)
    after = complete(version.definition)
    shown_before, shown_after = mask_job_data(before), mask_job_data(after)
    names = _changed(_comparable(before), _comparable(after)) if before else list(VERSIONED_FIELDS)
    return {name: {"before": shown_before.get(name), "after": shown_after.get(name)} for name in names}


def _comparable(definition: dict[str, Any]) -> dict[str, Any]:
    """A definition to compare with another: ``run_at`` in UTC (versions recorded before it was
    kept so hold the zone it arrived in)."""
    if not definition.get("run_at"):
        return definition
    return {**definition, "run_at": _utc_text(definition["run_at"])}


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
