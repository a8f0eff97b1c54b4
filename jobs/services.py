"""Every write to a Job's definition goes through here: views, admin actions and commands call these.

Each service runs in one transaction that also keeps the job's PeriodicTask in step
(``jobs.beat_sync``) and recomputes ``next_run_at``, which is what beat fires from. What a create
or an update saves is the job ``jobs.preparation.job_prepare`` makes of the input: the one path
that checks a job. The layers above write the rest of a job's row: beat moves ``next_run_at`` on
as it claims fires (``scheduling.fires``), and a finished run updates the counters
(``runs.accounting``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import DatabaseError, IntegrityError, transaction
from django.utils import timezone, translation
from django.utils.translation import gettext as _
from django_celery_beat.models import PeriodicTask, PeriodicTasks

from audit.services import audit_changes, audit_context, audit_record
from core import origin
from core.rows import insert_row
from jobs.beat_sync import periodic_task_for, remove_periodic_task, schedules_changed, sync_periodic_task
from jobs.dependencies import dependencies_sync
from jobs.errors import JobAlreadyExists, JobProtected
from jobs.models import EDITABLE_FIELDS, Job, JobVersion
from jobs.preparation import (
    check_clone_permission,
    check_shell_permission,
    clone_data,
    first_fire,
    job_prepare,
    resumed_status,
)
from jobs.tags import tags_record
from jobs.versions import complete, latest_version, version_record

if TYPE_CHECKING:
    from jobs.preparation import Actor

logger = logging.getLogger(__name__)

# Jobs the system needs, by id: created when beat starts (and by sync_schedules), never deletable.
# The apps that run them declare them (``register_system_job``): the runs app its cleanup job.
_system_jobs: dict[str, Mapping[str, Any]] = {}


def register_system_job(job_id: str, definition: Mapping[str, Any]) -> None:
    """Declare a job the system needs, as job data (``job_create``'s); an app's ``ready()`` calls this."""
    _system_jobs[job_id] = dict(definition)


def job_create(*, data: Mapping[str, Any], is_system: bool = False, actor: Actor = None) -> Job:
    return _create(data=data, is_system=is_system, actor=actor, action=JobVersion.Action.CREATE)


@transaction.atomic
def _create(*, data: Mapping[str, Any], is_system: bool, actor: Actor, action: str) -> Job:
    # A restored one-off may have had its date: it comes back paused, and needs a new date to run.
    job = job_prepare(data=data, actor=actor, past_run_at_ok=action == JobVersion.Action.RESTORE, check_id=False)
    job.is_system = is_system
    # The PeriodicTask first, so that the job's insert links it; the insert is the id's check (a
    # job of that id rolls all of it back). 6 statements a create: test_statement_counts.
    job.periodic_task = periodic_task_for(job)
    try:
        insert_row(job)  # job.save(force_insert=True)'s INSERT, its SQL built once (core.rows)
    except IntegrityError as exc:
        if is_duplicate_id(exc):
            raise JobAlreadyExists(job.id) from None
        raise
    dependencies_sync(job, new=True)
    tags_record(job.tags)
    version = version_record(job, action=action, actor=actor)
    restored = action == JobVersion.Action.RESTORE and version is not None
    audit_record(action=action, job_id=job.pk, details={"version": version.number} if restored and version else None)
    if job.periodic_task is not None:
        # Last: the PeriodicTasks row is one row that every create and update writes, locked until
        # the commit; taken here, creates at once wait for each other's commit only, not their inserts.
        schedules_changed()
    return job


def is_duplicate_id(error: IntegrityError) -> bool:
    """Whether ``error`` is a new job's insert refused for its id: a unique constraint of the jobs
    table (the id, or the PeriodicTask, whose name is the id's), not another constraint."""
    table = Job._meta.db_table
    diag = getattr(error.__cause__, "diag", None)  # PostgreSQL's: the constraint that refused it
    if diag is not None:
        return diag.table_name == table and str(getattr(error.__cause__, "sqlstate", "")) == "23505"
    return f"UNIQUE constraint failed: {table}." in str(error)  # SQLite's


def job_clone(*, source: Job, data: Mapping[str, Any], actor: Actor = None) -> Job:
    """A new job with ``source``'s definition and ``data``'s changes (``clone_data``: its own id,
    paused unless ``data`` says otherwise), created as any other, with its beat schedule."""
    check_clone_permission(actor)
    with audit_context(clone_of=source.pk):
        return job_create(data=clone_data(source=source, data=data), actor=actor)


def job_update(*, job: Job, data: Mapping[str, Any], actor: Actor = None) -> Job:
    """Apply a (partial) update. Changing the schedule or resuming recomputes the next fire.
    A change to the definition records a version (``jobs.versions``); a save that changes none, none."""
    return _update(job=job, data=data, actor=actor, action=JobVersion.Action.UPDATE)


@transaction.atomic
def _update(*, job: Job, data: Mapping[str, Any], actor: Actor, action: str) -> Job:
    stored = Job.objects.select_for_update().get(pk=job.pk)
    job = job_prepare(data=data, instance=stored, actor=actor)
    job.save()
    sync_periodic_task(job)
    dependencies_sync(job)
    if job.tags != stored.tags:
        tags_record(job.tags)
    version = version_record(job, action=action, actor=actor)
    if action == JobVersion.Action.REVERT:
        audit_record(action=action, job_id=job.pk, details={"version": version.number} if version else None)
    else:
        audit_changes(job_id=job.pk, before=stored, after=job, fields=EDITABLE_FIELDS)
    return job


def job_revert(*, job: Job, number: int, actor: Actor = None) -> Job:
    """Give ``job`` the definition of its version ``number``, as any update (validation applies: a
    past run_at is refused; the next fire is recomputed), recorded as a new version whose reason
    says so. The job keeps its status (versions do not hold it). Raises JobVersion.DoesNotExist."""
    version = JobVersion.objects.get(job_id=job.pk, number=number)
    data = {name: value for name, value in complete(version.definition).items() if name != "id"}
    given = origin.current().reason
    with translation.override(settings.LANGUAGE_CODE):  # stored: the deployment's language, whoever asks
        if given:
            reason = _("Reverted to version %(number)d: %(reason)s") % {"number": number, "reason": given}
        else:
            reason = _("Reverted to version %(number)d.") % {"number": number}
    with origin.reason(reason):
        return _update(job=job, data=data, actor=actor, action=JobVersion.Action.REVERT)


def job_restore(*, job_id: str, actor: Actor = None) -> Job:
    """Bring a deleted job back from its last version, paused, as any create (validation applies;
    its secrets are the stored ones). Raises JobVersion.DoesNotExist when it has no versions (never
    existed, or pruned by CRONTASK_VERSION_RETENTION_DAYS) and JobAlreadyExists when it exists."""
    version = latest_version(job_id)
    if version is None:
        raise JobVersion.DoesNotExist(_("No versions of a job %(id)s.") % {"id": repr(job_id)})
    if Job.objects.filter(pk=job_id).exists():
        raise JobAlreadyExists(job_id)
    data = {**complete(version.definition), "id": job_id, "status": Job.Status.PAUSED}
    given = origin.current().reason
    with translation.override(settings.LANGUAGE_CODE):  # stored: the deployment's language, whoever asks
        if given:
            reason = _("Restored from version %(number)d: %(reason)s") % {"number": version.number, "reason": given}
        else:
            reason = _("Restored from version %(number)d.") % {"number": version.number}
    with origin.reason(reason):
        return _create(data=data, is_system=False, actor=actor, action=JobVersion.Action.RESTORE)


def validate_pause_until(until: datetime | None, *, now: datetime | None = None) -> None:
    """A pause's ``until`` is a time to come: ValidationError on ``until`` otherwise."""
    now = now or timezone.now()
    if until is not None and until <= now:
        raise ValidationError({"until": _("Must be in the future (it is %(now)s now).") % {"now": now.isoformat()}})


@transaction.atomic
def job_pause(*, job: Job, until: datetime | None = None) -> Job:
    """Pause the job; with ``until`` (a future time) it resumes by itself then (``job_resume_due``).
    Pausing a paused job with another ``until`` (or none) changes when it comes back."""
    job = Job.objects.select_for_update().get(pk=job.pk)
    if job.status == Job.Status.COMPLETED:
        raise ValidationError({"status": _("A completed job cannot be paused.")})
    now = timezone.now()
    validate_pause_until(until, now=now)
    if job.status == Job.Status.PAUSED and job.paused_until == until:
        return job
    if job.status != Job.Status.PAUSED:
        job.paused_at = now
    job.status = Job.Status.PAUSED
    job.next_run_at = None
    job.paused_until = until
    job.save(update_fields=["status", "next_run_at", "paused_until", "paused_at", "updated_at"])
    sync_periodic_task(job)
    audit_record(action="pause", job_id=job.pk, details={"until": until.isoformat()} if until else None)
    return job


@transaction.atomic
def job_resume(*, job: Job, actor: Actor = None) -> Job:
    """Resume from now on: fires missed while paused are not run (see ``resumed_status``)."""
    job = Job.objects.select_for_update().get(pk=job.pk)
    check_shell_permission(actor, job.kind)
    if job.status != Job.Status.PAUSED:
        return job
    return _resume(job, now=timezone.now(), catch_up=False)


def _resume(job: Job, *, now: datetime, catch_up: bool) -> Job:
    """Resume the locked, paused ``job`` at ``now``. With ``catch_up`` (a pause that ended by
    itself) the latest fire that fell due while it was paused is its next fire, due at once: beat
    claims it and its misfire policy decides (run late, or ``skipped`` past the grace); the
    fires before it are passed over as a beat that fell behind passes over them."""
    until = job.paused_until
    job.status = resumed_status(job, now)
    job.next_run_at = first_fire(job, now)
    if catch_up and job.status == Job.Status.ACTIVE and job.trigger in (Job.Trigger.CRON, Job.Trigger.INTERVAL):
        anchor = job.last_fired_at or job.paused_at
        missed = job.schedule.missed(anchor, now, limit=1) if anchor is not None else []
        if missed and (job.paused_at is None or missed[-1] > job.paused_at):
            job.next_run_at = missed[-1]
    job.paused_until = None
    job.paused_at = None
    job.save(update_fields=["status", "next_run_at", "paused_until", "paused_at", "updated_at"])
    sync_periodic_task(job)
    audit_record(action="resume", job_id=job.pk, details={"paused_until": until.isoformat()} if until else None)
    return job


def job_resume_due(*, now: datetime, limit: int = 100) -> list[str]:
    """Resume the jobs whose ``paused_until`` has come (beat calls this every second or so), each
    in its own transaction, recorded as resumed by the system. Returns their ids."""
    due = list(
        Job.objects.filter(status=Job.Status.PAUSED, paused_until__lte=now)
        .order_by("paused_until")
        .values_list("pk", flat=True)[:limit]
    )
    resumed = []
    with origin.origin("system"):
        for job_id in due:
            with transaction.atomic():
                # Locked and read again: a request may have resumed or re-paused it meanwhile.
                job = Job.objects.select_for_update().filter(pk=job_id, status=Job.Status.PAUSED).first()
                if job is None or job.paused_until is None or job.paused_until > now:
                    continue
                try:
                    with transaction.atomic():  # what it wrote is undone if it cannot finish
                        _resume(job, now=now, catch_up=True)
                except DatabaseError:
                    raise  # beat's outage handling: the database is the problem, not this job
                except Exception as exc:  # noqa: BLE001 - one job must not stop beat (it calls this before each claim)
                    # A one-off whose run_at passed (a ValidationError), or a schedule written
                    # around the services that cannot be computed: it stays paused, and is not
                    # tried again every second.
                    Job.objects.filter(pk=job_id).update(paused_until=None)
                    reason = " ".join(exc.messages) if isinstance(exc, ValidationError) else repr(exc)
                    logger.warning("job %s could not resume by itself, it stays paused: %s", job_id, reason)
                    continue
            resumed.append(job_id)
    return resumed


@transaction.atomic
def job_delete(*, job: Job) -> None:
    """Delete the job, recording the definition it removed as its last version (what a restore
    brings back). Under the row's lock, so two deletes at once are one delete and one that finds
    nothing left to do. The definition is read from the row: the instance given may show masked
    secrets (the admin's, for a user who may delete but not change), and a restore needs the real ones."""
    stored = Job.objects.select_for_update().filter(pk=job.pk).first()
    if stored is None:
        return  # deleted meanwhile: its delete is recorded once, by whoever did it
    if stored.is_system:
        raise JobProtected(stored.id)
    remove_periodic_task(stored)
    audit_record(action="delete", job_id=stored.pk)
    version_record(stored, action=JobVersion.Action.DELETE)
    stored.delete()


def ensure_system_jobs() -> list[str]:
    """Create the system jobs that are missing; returns their ids. Existing ones are left as edited."""
    created = []
    with origin.origin("system"):  # whoever starts it (beat, a command), the system makes them
        for job_id, data in _system_jobs.items():
            if not Job.objects.filter(pk=job_id).exists():
                try:
                    job_create(data={"id": job_id, **data}, is_system=True)
                except JobAlreadyExists:
                    continue  # another process created it meanwhile
                created.append(job_id)
    return created


def sync_all_schedules(*, on_progress: Callable[[], None] | None = None) -> tuple[int, int]:
    """Rebuild every job's PeriodicTask and drop ours that lost their job. Returns (synced, removed).
    ``on_progress`` is called after each job (``manage.py sync_schedules`` draws its bar with it)."""
    synced = 0
    for job in Job.objects.select_related("periodic_task").iterator(chunk_size=500):
        with transaction.atomic():
            sync_periodic_task(job)
        synced += 1
        if on_progress is not None:
            on_progress()
    orphans = PeriodicTask.objects.filter(name__startswith="crontask:", crontask_job__isnull=True)
    removed = orphans.delete()[1].get("django_celery_beat.PeriodicTask", 0)
    PeriodicTasks.update_changed()
    return synced, removed
