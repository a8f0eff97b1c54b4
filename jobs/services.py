"""Every write to a Job's definition goes through here: views, admin actions and commands call these.

Each service runs in one transaction that also keeps the job's PeriodicTask in step
(``jobs.beat_sync``) and recomputes ``next_run_at``, which is what beat fires from. The layers
above write the rest of a job's row: beat moves ``next_run_at`` on as it claims fires
(``scheduling.fires``), and a finished run updates the counters (``runs.accounting``).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from django_celery_beat.models import PeriodicTask, PeriodicTasks

from jobs.beat_sync import remove_periodic_task, sync_periodic_task
from jobs.errors import SHELL_PERMISSION, JobAlreadyExists, JobProtected, ShellNotPermitted
from jobs.models import Job
from jobs.secrets import mask_text, restore_masked
from jobs.trigger_args import normalise_trigger_args

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser, AnonymousUser

    #: Who asks for a write: a user (the API, the admin), or None for the system and operators
    #: (manage.py commands, beat), who are not checked.
    Actor = AbstractBaseUser | AnonymousUser | None

logger = logging.getLogger(__name__)

# Fields a client may set. The rest are maintained by the system.
EDITABLE_FIELDS = frozenset(
    {
        "id",
        "name",
        "description",
        "kind",
        "trigger",
        "cron",
        "interval_seconds",
        "run_at",
        "timezone",
        "url",
        "method",
        "headers",
        "body",
        "follow_redirects",
        "handler",
        "handler_kwargs",
        "command",
        "timeout_seconds",
        "max_retries",
        "retry_backoff_seconds",
        "concurrency_policy",
        "misfire_grace_seconds",
        "status",
    }
)
# Input-only: APScheduler-style trigger_args (normalised away), and consent to run a date job
# whose run_at has already passed right away.
INPUT_ONLY_FIELDS = frozenset({"trigger_args", "run_if_past"})
TRIGGER_FIELDS = {"cron": Job.Trigger.CRON, "interval_seconds": Job.Trigger.INTERVAL, "run_at": Job.Trigger.DATE}
SCHEDULE_FIELDS = frozenset({"trigger", "cron", "interval_seconds", "run_at", "timezone"})
KIND_FIELDS = {"url": Job.Kind.HTTP, "handler": Job.Kind.PYTHON, "command": Job.Kind.SHELL}


# Jobs the system needs, by id: created when beat starts (and by sync_schedules), never deletable.
# The apps that run them declare them (``register_system_job``): the runs app its cleanup job.
_system_jobs: dict[str, Mapping[str, Any]] = {}


def register_system_job(job_id: str, definition: Mapping[str, Any]) -> None:
    """Declare a job the system needs, as job data (``job_create``'s); an app's ``ready()`` calls this."""
    _system_jobs[job_id] = dict(definition)


def check_shell_permission(actor: Actor, *kinds: str) -> None:
    """Refuse a user without the shell permission anything that makes a shell job run or
    changes one: creating, changing (to or from shell), resuming or running it. Checked on the
    kind a job ends up with, after inference (``command`` alone makes a shell job), so what a
    client sends cannot dodge it. Pausing and deleting stop a job and need no more than the
    job permissions."""
    if actor is not None and Job.Kind.SHELL in kinds and not actor.has_perm(SHELL_PERMISSION):
        raise ShellNotPermitted()


@transaction.atomic
def job_create(*, data: Mapping[str, Any], is_system: bool = False, actor: Actor = None) -> Job:
    fields = _check_keys(data)
    run_if_past = bool(fields.pop("run_if_past", False))
    if "id" in fields and not fields["id"]:
        del fields["id"]
    fields = _resolve_trigger(fields, current=None)
    fields = restore_masked(fields, None)  # a new job has no secret for a mask to stand for
    fields.setdefault("kind", _infer_kind(fields))
    check_shell_permission(actor, fields["kind"])
    job = Job(**fields, is_system=is_system)
    job.id = job.id or uuid.uuid4().hex[:12]
    job.name = job.name or job.id
    if job.status not in (Job.Status.ACTIVE, Job.Status.PAUSED):
        raise ValidationError({"status": "A new job is active or paused."})
    job.full_clean(validate_unique=False)
    now = timezone.now()
    _check_run_at_future(job, now, run_if_past=run_if_past)
    if Job.objects.filter(pk=job.id).exists():
        raise JobAlreadyExists(job.id)
    job.next_run_at = _first_fire(job, now, run_if_past=run_if_past)
    job.shown_target = mask_text(job.target)
    try:
        with transaction.atomic():
            job.save(force_insert=True)
    except IntegrityError:
        raise JobAlreadyExists(job.id) from None
    sync_periodic_task(job)
    return job


@transaction.atomic
def job_update(*, job: Job, data: Mapping[str, Any], actor: Actor = None) -> Job:
    """Apply a (partial) update. Changing the schedule or resuming recomputes the next fire."""
    fields = _check_keys(data, job=job)
    run_if_past = bool(fields.pop("run_if_past", False))
    if fields.get("id", job.id) != job.id:
        raise ValidationError({"id": "The id of a job cannot be changed."})
    fields.pop("id", None)
    fields = _resolve_trigger(fields, current=job)
    job = Job.objects.select_for_update().get(pk=job.pk)
    check_shell_permission(actor, job.kind, fields.get("kind", job.kind))
    # Masked values sent back (a GET's output, the admin form, an export) keep the stored secrets.
    fields = restore_masked(fields, job)
    before = job.schedule
    old_status = job.status
    for name, value in fields.items():
        setattr(job, name, value)
    if job.status not in Job.Status.values:
        raise ValidationError({"status": f"Unknown status {job.status!r}."})
    job.name = job.name or job.id
    job.full_clean(validate_unique=False)
    schedule_changed = job.schedule != before
    now = timezone.now()
    if schedule_changed and job.run_at != before.run_at:
        _check_run_at_future(job, now, run_if_past=run_if_past)
    if schedule_changed and job.status == Job.Status.COMPLETED:
        job.status = Job.Status.ACTIVE  # a finished one-off given a new date runs again
    if old_status == Job.Status.COMPLETED and job.status != Job.Status.COMPLETED and not schedule_changed:
        raise ValidationError({"status": "A completed one-off job runs again only when given a new run_at."})
    if old_status == Job.Status.PAUSED and job.status == Job.Status.ACTIVE and not schedule_changed:
        job.status = _resumed_status(job, now)
    if schedule_changed or job.status != old_status:
        job.next_run_at = _first_fire(job, now, run_if_past=run_if_past and job.run_at != before.run_at)
    job.shown_target = mask_text(job.target)
    job.save()
    sync_periodic_task(job)
    return job


@transaction.atomic
def job_pause(*, job: Job) -> Job:
    job = Job.objects.select_for_update().get(pk=job.pk)
    if job.status == Job.Status.COMPLETED:
        raise ValidationError({"status": "A completed job cannot be paused."})
    if job.status == Job.Status.PAUSED:
        return job
    job.status = Job.Status.PAUSED
    job.next_run_at = None
    job.save(update_fields=["status", "next_run_at", "updated_at"])
    sync_periodic_task(job)
    return job


@transaction.atomic
def job_resume(*, job: Job, actor: Actor = None) -> Job:
    """Resume from now on: fires missed while paused are not run (see ``_resumed_status``)."""
    job = Job.objects.select_for_update().get(pk=job.pk)
    check_shell_permission(actor, job.kind)
    if job.status != Job.Status.PAUSED:
        return job
    now = timezone.now()
    job.status = _resumed_status(job, now)
    job.next_run_at = _first_fire(job, now)
    job.save(update_fields=["status", "next_run_at", "updated_at"])
    sync_periodic_task(job)
    return job


@transaction.atomic
def job_delete(*, job: Job) -> None:
    if job.is_system:
        raise JobProtected(job.id)
    remove_periodic_task(job)
    job.delete()


def ensure_system_jobs() -> list[str]:
    """Create the system jobs that are missing; returns their ids. Existing ones are left as edited."""
    created = []
    for job_id, data in _system_jobs.items():
        if not Job.objects.filter(pk=job_id).exists():
            try:
                job_create(data={"id": job_id, **data}, is_system=True)
            except JobAlreadyExists:
                continue  # another process created it meanwhile
            created.append(job_id)
    return created


def sync_all_schedules() -> tuple[int, int]:
    """Rebuild every job's PeriodicTask and drop ours that lost their job. Returns (synced, removed)."""
    synced = 0
    for job in Job.objects.select_related("periodic_task").iterator(chunk_size=500):
        with transaction.atomic():
            sync_periodic_task(job)
        synced += 1
    orphans = PeriodicTask.objects.filter(name__startswith="crontask:", crontask_job__isnull=True)
    removed = orphans.delete()[1].get("django_celery_beat.PeriodicTask", 0)
    PeriodicTasks.update_changed()
    return synced, removed


def _check_keys(data: Mapping[str, Any], *, job: Job | None = None) -> dict[str, Any]:
    unknown = sorted(set(data) - EDITABLE_FIELDS - INPUT_ONLY_FIELDS)
    if unknown:
        raise ValidationError({name: "Unknown field." for name in unknown})
    # on an update, a naive run_date is read in the job's own zone unless the data names one
    return normalise_trigger_args(dict(data), default_timezone=job.timezone if job else None)


def _resolve_trigger(fields: dict[str, Any], *, current: Job | None) -> dict[str, Any]:
    """Infer ``trigger`` from the one trigger field given, and clear the others."""
    given = [name for name in TRIGGER_FIELDS if fields.get(name) not in (None, "")]
    explicit = fields.get("trigger")
    if len(given) > 1:
        raise ValidationError({"trigger": f"Give only one of cron, interval_seconds, run_at; got {', '.join(given)}."})
    if given:
        inferred = TRIGGER_FIELDS[given[0]]
        if explicit and explicit != inferred:
            raise ValidationError({"trigger": f"{given[0]} is given, so the trigger is {inferred}, not {explicit}."})
        trigger = inferred
    elif explicit:
        trigger = explicit
    elif current is not None:
        return fields  # the schedule is not being changed
    else:
        trigger = Job.Trigger.MANUAL
    if trigger not in Job.Trigger.values:
        raise ValidationError({"trigger": f"Unknown trigger {trigger!r}."})
    fields["trigger"] = trigger
    for name, owner in TRIGGER_FIELDS.items():
        if owner != trigger:
            fields[name] = "" if name == "cron" else None
    return fields


def _infer_kind(fields: Mapping[str, Any]) -> str:
    given = [kind for name, kind in KIND_FIELDS.items() if fields.get(name)]
    if len(given) > 1:
        raise ValidationError({"kind": "Give kind: more than one of url, handler, command is set."})
    return given[0] if given else Job.Kind.HTTP


def _resumed_status(job: Job, now: datetime) -> str:
    """The status a paused job takes when resumed at ``now``.

    A one-off job whose ``run_at`` passed while it was paused is not run late: if beat fired it
    (``last_fired_at``, which beat sets as it claims a fire) it is completed, otherwise it needs a
    new ``run_at``.
    """
    if job.trigger != Job.Trigger.DATE or job.run_at is None or job.run_at > now:
        return Job.Status.ACTIVE
    if job.last_fired_at is not None and job.last_fired_at >= job.run_at:
        return Job.Status.COMPLETED
    raise ValidationError({"run_at": "Passed while the job was paused: give it a new run_at to run it."})


def _first_fire(job: Job, now: datetime, *, run_if_past: bool = False) -> datetime | None:
    """When an active job fires first from ``now``. A one-off whose ``run_at`` has passed fires
    now only when the request said so (``run_if_past``); otherwise it has had its time."""
    if job.status != Job.Status.ACTIVE:
        return None
    first = job.schedule.first_fire(now)
    if job.trigger == Job.Trigger.DATE and first is not None and first <= now:
        return now if run_if_past else None
    return first


def _check_run_at_future(job: Job, now: datetime, *, run_if_past: bool) -> None:
    if job.trigger == Job.Trigger.DATE and job.run_at is not None and job.run_at <= now and not run_if_past:
        raise ValidationError(
            {"run_at": "Is in the past: give a future time, or send run_if_past: true to run the job now."}
        )
