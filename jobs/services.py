"""Every write to a Job goes through here: views, admin actions and commands call these.

Each service runs in one transaction that also keeps the job's PeriodicTask in step
(``jobs.beat_sync``) and recomputes ``next_run_at``, which is what beat fires from.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Case, F, Q, Value, When
from django.utils import timezone
from django_celery_beat.models import PeriodicTask, PeriodicTasks

from jobs.beat_sync import remove_periodic_task, sync_periodic_task
from jobs.errors import JobAlreadyExists, JobProtected
from jobs.models import Job
from jobs.secrets import keep_masked_headers
from jobs.trigger_args import normalise_trigger_args
from jobs.triggers import Schedule

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


@dataclass(frozen=True)
class Fire:
    """One nominal fire of a job, claimed by the scheduler."""

    job_id: str
    scheduled_for: datetime


# Jobs the system needs; created when beat starts (and by sync_schedules), never deletable.
SYSTEM_JOBS: dict[str, dict[str, Any]] = {
    "cleanup-runs": {
        "name": "Clean up old runs",
        "description": "Deletes runs older than CRONTASK_RUN_RETENTION_DAYS, in batches.",
        "kind": Job.Kind.PYTHON,
        "handler": "runs.retention:run_cleanup",
        "cron": "17 3 * * *",
        "timeout_seconds": 3600,
    },
}


@transaction.atomic
def job_create(*, data: Mapping[str, Any], is_system: bool = False) -> Job:
    fields = _check_keys(data)
    run_if_past = bool(fields.pop("run_if_past", False))
    if "id" in fields and not fields["id"]:
        del fields["id"]
    fields = _resolve_trigger(fields, current=None)
    fields.setdefault("kind", _infer_kind(fields))
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
    job.next_run_at = _first_fire(job, now)
    try:
        with transaction.atomic():
            job.save(force_insert=True)
    except IntegrityError:
        raise JobAlreadyExists(job.id) from None
    sync_periodic_task(job)
    return job


@transaction.atomic
def job_update(*, job: Job, data: Mapping[str, Any]) -> Job:
    """Apply a (partial) update. Changing the schedule or resuming recomputes the next fire."""
    fields = _check_keys(data)
    run_if_past = bool(fields.pop("run_if_past", False))
    if fields.get("id", job.id) != job.id:
        raise ValidationError({"id": "The id of a job cannot be changed."})
    fields.pop("id", None)
    fields = _resolve_trigger(fields, current=job)
    job = Job.objects.select_for_update().get(pk=job.pk)
    if isinstance(fields.get("headers"), dict):
        fields["headers"] = keep_masked_headers(fields["headers"], job.headers)
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
    if schedule_changed or job.status != old_status:
        job.next_run_at = _first_fire(job, now)
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
def job_resume(*, job: Job) -> Job:
    """Resume from now on: fires missed while paused are not run."""
    job = Job.objects.select_for_update().get(pk=job.pk)
    if job.status != Job.Status.PAUSED:
        return job
    job.status = Job.Status.ACTIVE
    job.next_run_at = _first_fire(job, timezone.now())
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
    for job_id, data in SYSTEM_JOBS.items():
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


def job_run_now(*, job: Job, overrides: Mapping[str, Any] | None = None) -> Any:
    """Queue a manual run of the job, whatever its status; returns the queued Run."""
    from runs.services import run_enqueue_manual

    return run_enqueue_manual(job=job, overrides=dict(overrides or {}))


def claim_due_fires(*, now: datetime, limit: int) -> list[Fire]:
    """Claim the fires due at ``now`` by moving each job's ``next_run_at`` on.

    The move is a conditional update on the old ``next_run_at``, so when two schedulers look at
    the same job only one claims the fire. Call inside a transaction that publishes the fires
    before it commits: if publishing fails, the claim rolls back and the fire is retried.
    """
    due = (
        Job.objects.filter(status=Job.Status.ACTIVE, next_run_at__lte=now)
        .order_by("next_run_at")
        .values_list("id", "next_run_at", "trigger", "cron", "interval_seconds", "run_at", "timezone")[:limit]
    )
    fires = []
    for job_id, scheduled_for, trigger, cron, interval, run_at, tz in due:
        schedule = Schedule(trigger=trigger, cron=cron, interval_seconds=interval, run_at=run_at, timezone=tz)
        try:
            following = schedule.next_fire(scheduled_for, now)
        except Exception:  # a schedule written around the services (raw SQL) must not stop beat
            logger.exception("job %s has a schedule that cannot be computed; it fires no more", job_id)
            following = None
        claimed = Job.objects.filter(pk=job_id, status=Job.Status.ACTIVE, next_run_at=scheduled_for).update(
            next_run_at=following
        )
        if claimed:
            fires.append(Fire(job_id=job_id, scheduled_for=scheduled_for))
    return fires


def next_due_at() -> datetime | None:
    """When the earliest active job is due (index ``job_due_idx``)."""
    return (
        Job.objects.filter(status=Job.Status.ACTIVE, next_run_at__isnull=False)
        .order_by("next_run_at")
        .values_list("next_run_at", flat=True)
        .first()
    )


def job_record_run(*, job_id: str, status: str, started_at: datetime, counted: bool = True) -> None:
    """Fold a finished run into the job's counters with one atomic UPDATE (exact under concurrency)."""
    from runs.models import Run

    newer = Q(last_run_at__isnull=True) | Q(last_run_at__lte=started_at)
    updates: dict[str, Any] = {
        "last_run_at": Case(When(newer, then=Value(started_at)), default=F("last_run_at")),
        "last_run_status": Case(When(newer, then=Value(status)), default=F("last_run_status")),
    }
    if counted:
        updates["run_count"] = F("run_count") + 1
        if status == Run.Status.SUCCESS:
            updates["success_count"] = F("success_count") + 1
        else:
            updates["failure_count"] = F("failure_count") + 1
    Job.objects.filter(pk=job_id).update(**updates)


def job_complete_if_fired(*, job_id: str) -> None:
    """A one-off job whose fire has been claimed (next_run_at cleared) is completed by its run."""
    done = Job.objects.filter(
        pk=job_id, trigger=Job.Trigger.DATE, status=Job.Status.ACTIVE, next_run_at__isnull=True
    ).update(status=Job.Status.COMPLETED)
    if done:
        # A queryset update skips django-celery-beat's change signal: bump it by hand.
        PeriodicTask.objects.filter(crontask_job__pk=job_id).update(enabled=False)
        PeriodicTasks.update_changed()


def _check_keys(data: Mapping[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(data) - EDITABLE_FIELDS - INPUT_ONLY_FIELDS)
    if unknown:
        raise ValidationError({name: "Unknown field." for name in unknown})
    return normalise_trigger_args(dict(data))


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


def _first_fire(job: Job, now: datetime) -> datetime | None:
    if job.status != Job.Status.ACTIVE:
        return None
    first = job.schedule.first_fire(now)
    if job.trigger == Job.Trigger.DATE and first is not None:
        return max(first, now)  # a past run_at accepted with run_if_past fires now
    return first


def _check_run_at_future(job: Job, now: datetime, *, run_if_past: bool) -> None:
    if job.trigger == Job.Trigger.DATE and job.run_at is not None and job.run_at <= now and not run_if_past:
        raise ValidationError(
            {"run_at": "Is in the past: give a future time, or send run_if_past: true to run the job now."}
        )
