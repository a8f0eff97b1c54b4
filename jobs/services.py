"""Every write to a Job goes through here: views, admin actions and commands call these.

Each service runs in one transaction that also keeps the job's PeriodicTask in step
(``jobs.beat_sync``) and recomputes ``next_run_at``, which is what beat fires from.
"""

from __future__ import annotations

import logging
import uuid
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.utils import timezone
from django_celery_beat.models import PeriodicTask, PeriodicTasks

from jobs.beat_sync import remove_periodic_task, sync_periodic_task
from jobs.errors import SHELL_PERMISSION, JobAlreadyExists, JobProtected, ShellNotPermitted
from jobs.models import Job
from jobs.secrets import mask_text, restore_masked
from jobs.trigger_args import normalise_trigger_args
from jobs.triggers import Schedule

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
#: Fires a beat that fell behind records as skipped, per job and claim: the latest ones.
MISSED_FIRES_RECORDED = 100


@dataclass(frozen=True)
class Fire:
    """One nominal fire of a job, claimed by the scheduler."""

    job_id: str
    scheduled_for: datetime
    #: The job's kind when it was claimed: beat sends the HTTP fires of a burst together.
    kind: str = ""
    #: The job's later fires that fell due before beat could claim this one (it was stopped, or
    #: cut off from the database): this fire stands for them, and they are recorded as skipped.
    missed: tuple[datetime, ...] = ()
    #: What its run runs (``Job.target``, secrets masked), recorded with the run.
    target: str = ""


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


def job_run_now(*, job: Job, overrides: Mapping[str, Any] | None = None, actor: Actor = None) -> Any:
    """Queue a manual run of the job, whatever its status; returns the queued Run."""
    from runs.services import run_enqueue_manual

    check_shell_permission(actor, job.kind)
    # A mask among one-off values (copied from a run's masked overrides) stands for no value the
    # job keeps: refused, rather than sent as the header or kwarg.
    overrides = restore_masked(dict(overrides or {}), None)
    return run_enqueue_manual(job=job, overrides=overrides)


def claim_due_fires(*, now: datetime, limit: int, until: datetime | None = None) -> list[Fire]:
    """Claim up to ``limit`` fires due by ``until`` (default: ``now``, the current time) by moving
    each job's ``next_run_at`` on. Beat claims a little ahead (CRONTASK_FIRE_LEAD_MS); each
    job's following fire is still the first after ``now``, so no fire in the lead is skipped.

    The due rows are locked while they are claimed (``FOR UPDATE SKIP LOCKED`` on PostgreSQL;
    SQLite's IMMEDIATE transactions let one writer in at a time), so two schedulers never claim
    the same fire, and a job that a request is editing right now is left for the next tick.
    Jobs that share a schedule and a due time (a burst) share one computation and one UPDATE.
    Beat records the fires as runs in the same transaction and publishes them once it commits
    (``runs.outbox``): a fire it could not publish stays recorded, and is sent later.
    """
    due = (
        Job.objects.select_for_update(skip_locked=True)
        .filter(status=Job.Status.ACTIVE, next_run_at__lte=until or now)
        .order_by("next_run_at")
        .values_list(
            "id", "kind", "method", "url", "handler", "command",
            "next_run_at", "trigger", "cron", "interval_seconds", "run_at", "timezone",
        )[:limit]
    )  # fmt: skip
    fires: list[Fire] = []
    following: dict[tuple[Any, ...], tuple[datetime | None, tuple[datetime, ...]]] = {}
    moved: dict[datetime | None, list[str]] = defaultdict(list)
    for job_id, kind, method, url, handler, command, scheduled_for, *schedule in due:
        key = (scheduled_for, *schedule)
        if key not in following:
            following[key] = _following_fire(job_id, Schedule(*schedule), scheduled_for, now)
        next_run_at, missed = following[key]
        moved[next_run_at].append(job_id)
        target = mask_text(Job.target_of(kind=kind, method=method, url=url, handler=handler, command=command))
        fires.append(Fire(job_id=job_id, scheduled_for=scheduled_for, kind=kind, missed=missed, target=target))
    for next_run_at, ids in moved.items():
        Job.objects.filter(pk__in=ids).update(next_run_at=next_run_at)
    return fires


def _following_fire(
    job_id: str, schedule: Schedule, scheduled_for: datetime, now: datetime
) -> tuple[datetime | None, tuple[datetime, ...]]:
    """The job's next fire after ``scheduled_for`` (never at or before ``now``), and the fires
    between them that beat missed (at most MISSED_FIRES_RECORDED, the latest)."""
    try:
        following = schedule.next_fire(scheduled_for, now)
    except Exception:  # a schedule written around the services (raw SQL) must not stop beat
        logger.exception("job %s has a schedule that cannot be computed; it fires no more", job_id)
        return None, ()
    missed: tuple[datetime, ...] = ()
    if now - scheduled_for >= timedelta(seconds=1):  # no schedule fires twice within a second
        try:
            missed = tuple(schedule.missed(scheduled_for, now, limit=MISSED_FIRES_RECORDED))
        except Exception:  # only bookkeeping: the job fires on all the same
            logger.exception("job %s: could not list the fires it missed", job_id)
    if missed:
        logger.warning(
            "job %s: %d fire(s) from %s to %s fell due before beat could fire them; the fire at %s stands for them",
            job_id, len(missed), missed[0].isoformat(), missed[-1].isoformat(), scheduled_for.isoformat(),
        )  # fmt: skip
    return following, missed


def reconcile_next_runs(
    *, now: datetime, after: str, limit: int, memo: dict[tuple[str, str], datetime | None]
) -> tuple[str, int]:
    """Repair ``next_run_at`` of up to ``limit`` jobs with an id above ``after``; returns (the last
    id looked at, or "" once past the last job; how many were repaired).

    Beat fires from ``next_run_at``, which the services keep right. A change made around them (a
    queryset ``update()``, raw SQL) can leave it wrong: a job set active with no next fire, a cron
    edited without moving its next fire. Beat walks the whole table with this in small steps, so
    such a change is picked up within one pass. ``memo`` keeps each cron's next fire between calls.
    ``now`` is beat's horizon: the fires due by then are claimed or being claimed (see
    ``claim_due_fires``' ``until``).
    """
    rows = list(
        Job.objects.filter(pk__gt=after)
        .order_by("pk")
        .values_list("id", "status", "next_run_at", "trigger", "cron", "interval_seconds", "run_at", "timezone")[:limit]
    )
    repaired = 0
    for job_id, status, next_run_at, *schedule in rows:
        expected = _expected_next_run(job_id, status, next_run_at, Schedule(*schedule), now, memo)
        if expected != next_run_at and Job.objects.filter(pk=job_id, status=status, next_run_at=next_run_at).update(
            next_run_at=expected
        ):
            logger.warning(
                "job %s: next run moved from %s to %s (its schedule was changed around the services)",
                job_id, next_run_at, expected,
            )  # fmt: skip
            repaired += 1
    last = rows[-1][0] if len(rows) == limit else ""
    return last, repaired


def _expected_next_run(
    job_id: str,
    status: str,
    next_run_at: datetime | None,
    schedule: Schedule,
    now: datetime,
    memo: dict[tuple[str, str], datetime | None],
) -> datetime | None:
    """What ``next_run_at`` should be, or the current value when it is right (or due: the claim
    computes the following fire from the schedule as it is then)."""
    if status != Job.Status.ACTIVE or schedule.trigger == Job.Trigger.MANUAL:
        return None
    if next_run_at is not None and next_run_at <= now:
        return next_run_at
    if schedule.trigger == Job.Trigger.CRON:
        key = (schedule.cron, schedule.timezone)
        if key not in memo or (memo[key] is not None and memo[key] <= now):
            try:
                memo[key] = schedule.first_fire(now)
            except Exception:  # a schedule broken around the services fires no more
                memo[key] = None
                if next_run_at is not None:
                    logger.exception("job %s has a schedule that cannot be computed; it fires no more", job_id)
        return memo[key]
    if schedule.trigger == Job.Trigger.INTERVAL:
        latest = now.replace(microsecond=0) + timedelta(seconds=schedule.interval_seconds or 0)
        return next_run_at if next_run_at is not None and next_run_at <= latest else latest
    # date: a one-off that has not fired yet fires at its run_at; one that has stays as it is
    if schedule.run_at is not None and schedule.run_at > now:
        return schedule.run_at
    return None


def next_due_at() -> datetime | None:
    """When the earliest active job is due (index ``job_due_idx``)."""
    return (
        Job.objects.filter(status=Job.Status.ACTIVE, next_run_at__isnull=False)
        .order_by("next_run_at")
        .values_list("next_run_at", flat=True)
        .first()
    )


def job_record_run(*, job_id: str, status: str, started_at: datetime, counted: bool = True) -> None:
    """Fold a finished run into the job's counters with one atomic UPDATE (exact under concurrency).

    ``last_run_at`` and ``last_run_status`` move only forward: a run that started before the
    one already recorded does not replace it. Every run ends here, so the statement is written
    out rather than built by the ORM each time, which cost most of a millisecond per run.
    """
    from runs.models import Run

    succeeded = counted and status == Run.Status.SUCCESS
    params = {
        "at": Job._meta.get_field("last_run_at").get_db_prep_value(started_at, connection),
        "status": status,
        "runs": int(counted),
        "successes": int(succeeded),
        "failures": int(counted and not succeeded),
        "id": job_id,
    }
    with connection.cursor() as cursor:
        cursor.execute(_RECORD_RUN, params)


# Every expression in SET reads the row as it was before the UPDATE (in PostgreSQL and SQLite;
# MySQL would read last_run_at already set, hence the order).
_RECORD_RUN = """
UPDATE jobs_job SET
    last_run_status = CASE WHEN last_run_at IS NULL OR last_run_at <= %(at)s THEN %(status)s ELSE last_run_status END,
    last_run_at = CASE WHEN last_run_at IS NULL OR last_run_at <= %(at)s THEN %(at)s ELSE last_run_at END,
    run_count = run_count + %(runs)s,
    success_count = success_count + %(successes)s,
    failure_count = failure_count + %(failures)s
WHERE id = %(id)s
"""


def job_complete_if_fired(*, job_id: str) -> None:
    """A one-off job whose fire has been claimed (next_run_at cleared) is completed by its run."""
    done = Job.objects.filter(
        pk=job_id, trigger=Job.Trigger.DATE, status=Job.Status.ACTIVE, next_run_at__isnull=True
    ).update(status=Job.Status.COMPLETED)
    if done:
        # A queryset update skips django-celery-beat's change signal: bump it by hand.
        PeriodicTask.objects.filter(crontask_job__pk=job_id).update(enabled=False)
        PeriodicTasks.update_changed()


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

    A one-off job whose ``run_at`` passed while it was paused is not run late: if it fired before
    the pause it is completed, otherwise it needs a new ``run_at``.
    """
    from runs.models import Run

    if job.trigger != Job.Trigger.DATE or job.run_at is None or job.run_at > now:
        return Job.Status.ACTIVE
    if job.runs.filter(trigger=Run.Trigger.SCHEDULED, scheduled_for__gte=job.run_at).exists():
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
