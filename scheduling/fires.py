"""Beat's side of the job table: claiming the fires due, and repairing ``next_run_at``.

Beat fires from ``Job.next_run_at``. ``claim_due_fires`` moves it on for the jobs due now (the
fire claimed goes to ``last_fired_at``) and returns one ``Fire`` per job; beat records them as
runs (``scheduling.outbox``) in the same transaction and then publishes them
(``scheduling.scheduler``). ``reconcile_next_runs`` walks the table in small steps and repairs a
``next_run_at`` that a change made around the services left wrong.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.db import connection
from django.db.models import BigIntegerField, BooleanField, ExpressionWrapper, F, Func, Q
from django.db.models.expressions import RawSQL

from jobs.models import Job
from jobs.secrets import mask_text
from jobs.triggers import Schedule, jitter_offset

logger = logging.getLogger(__name__)

#: Fires a beat that fell behind records as skipped, per job and claim: the latest ones.
MISSED_FIRES_RECORDED = 100
#: Distinct next fires in one claim above which the jobs are moved on by one UPDATE (CASE per row)
#: rather than one UPDATE per next fire: jittered jobs each have their own.
SPREAD_UPDATES = 8


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
    #: The job's calendars (ids) and blackout policy: beat holds back a fire in one of their
    #: windows (``scheduling.blackouts``).
    calendars: tuple[int, ...] = ()
    blackout_policy: str = ""


def claim_due_fires(*, now: datetime, limit: int, until: datetime | None = None) -> list[Fire]:
    """Claim up to ``limit`` fires due by ``until`` (default: ``now``, the current time) by moving
    each job's ``next_run_at`` on. Beat claims a little ahead (CRONTASK_FIRE_LEAD_MS); each
    job's following fire is still the first after ``now``, so no fire in the lead is skipped.

    The due rows are locked while they are claimed (``FOR UPDATE SKIP LOCKED`` on PostgreSQL;
    SQLite's IMMEDIATE transactions let one writer in at a time), so two schedulers never claim
    the same fire, and a job that a request is editing right now is left for the next tick.
    Jobs that share a schedule and a due time (a burst) share one computation and one UPDATE.
    Beat records the fires as runs in the same transaction and publishes them once it commits
    (``scheduling.outbox``): a fire it could not publish stays recorded, and is sent later.
    """
    due = (
        Job.objects.select_for_update(skip_locked=True)
        .filter(status=Job.Status.ACTIVE, next_run_at__lte=until or now)
        .order_by("next_run_at")
        .values_list(
            "id", "kind", "method", "url", "handler", "command",
            "next_run_at", "trigger", "cron", "interval_seconds", "run_at", "timezone",
            "jitter_seconds", "dst_policy", "calendars", "blackout_policy",
        )[:limit]
    )  # fmt: skip
    fires: list[Fire] = []
    following: dict[tuple[object, ...], tuple[datetime | None, tuple[datetime, ...]]] = {}
    moved: dict[datetime | None, list[str]] = defaultdict(list)
    for row in due:
        job_id, kind, method, url, handler, command, scheduled_for, trigger, cron, every, run_at, zone = row[:12]
        jitter, dst_policy, calendars, blackout_policy = row[12:]
        if scheduled_for is None:  # not due: next_run_at__lte matches no NULL
            continue
        offset = jitter_offset(job_id, jitter)
        key = (scheduled_for, trigger, cron, every, run_at, zone, offset, dst_policy)
        if key not in following:
            schedule = Schedule(trigger, cron, every, run_at, zone, offset, dst_policy)
            following[key] = _following_fire(job_id, schedule, scheduled_for, now)
        next_run_at, missed = following[key]
        moved[next_run_at].append(job_id)
        target = mask_text(Job.target_of(kind=kind, method=method, url=url, handler=handler, command=command))
        fires.append(
            Fire(
                job_id=job_id, scheduled_for=scheduled_for, kind=kind, missed=missed, target=target,
                calendars=tuple(calendars) if isinstance(calendars, list) else (),
                blackout_policy=str(blackout_policy),
            )
        )  # fmt: skip
    if len(moved) > SPREAD_UPDATES:
        # Jittered jobs each have their own next fire: one UPDATE for the batch, not one a job.
        claimed_at = {fire.job_id: fire.scheduled_for for fire in fires}
        Job.objects.bulk_update(
            [
                Job(pk=job_id, next_run_at=n, last_fired_at=claimed_at[job_id])
                for n, ids in moved.items()
                for job_id in ids
            ],
            ["next_run_at", "last_fired_at"],
        )
        return fires
    for next_run_at, ids in moved.items():
        # SET reads the row as it was, so last_fired_at takes the fire claimed (read on resuming a one-off).
        Job.objects.filter(pk__in=ids).update(next_run_at=next_run_at, last_fired_at=F("next_run_at"))
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


def change_mark() -> int | None:
    """A mark to give ``reconcile_next_runs`` later as ``changed_since``: on PostgreSQL, the oldest
    transaction still running now (every row written from now on, or by a transaction open now,
    has a ``xmin`` at or after it); None elsewhere (the walk then reads every job)."""
    if connection.vendor != "postgresql":
        return None
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint")
        return int(cursor.fetchone()[0])


def _changed_since(mark: int) -> RawSQL:
    """The rows written (inserted or updated) by a transaction at or after ``mark`` (``change_mark``).

    A row's ``xmin`` is the 32-bit id of the transaction that wrote it: it is after the mark when
    its distance from the mark's low 32 bits, modulo 2**32, is below the number of transactions
    begun since. A row not written since is before the mark (a frozen row written over 2**32
    transactions ago may pass too: it is only looked at once more)."""
    return RawSQL(
        "((xmin::text::bigint - %s + 4294967296) %% 4294967296)"
        " < (pg_snapshot_xmax(pg_current_snapshot())::text::bigint - %s)",
        (mark % 2**32, mark),
        output_field=BooleanField(),
    )


class EpochMicros(Func):
    """A timestamp as whole microseconds since the epoch (PostgreSQL): an int, which the driver
    loads for a fraction of what a ``datetime`` costs through Django's time zone loader (about
    6 µs a value, most of a reconciliation step's CPU)."""

    template = "(EXTRACT(EPOCH FROM %(expressions)s) * 1000000)::bigint"
    output_field = BigIntegerField()


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _times_as_integers() -> bool:
    """Whether the database turns times into integers for the reconciliation (``EpochMicros``);
    elsewhere (SQLite) they are read as ``datetime`` and turned into integers here."""
    return connection.vendor == "postgresql"


def _micros(value: datetime | None) -> int | None:
    """``value`` in microseconds since the epoch (exact: integer arithmetic)."""
    return None if value is None else (value - _EPOCH) // timedelta(microseconds=1)


def _from_micros(value: int) -> datetime:
    return _EPOCH + timedelta(microseconds=value)


def reconcile_next_runs(
    *,
    now: datetime,
    after: str,
    limit: int,
    memo: dict[tuple[object, ...], int | None],
    changed_since: int | None = None,
) -> tuple[str, int]:
    """Repair ``next_run_at`` of up to ``limit`` jobs with an id above ``after``; returns (the last
    id looked at, or "" once past the last job; how many were repaired). With ``changed_since``
    (a ``change_mark``), only the jobs written since that mark are looked at: a job that was
    right at the last look and has not been written since is still right (its schedule has not
    changed, and a fire it has fallen due for is the claim's).

    Beat fires from ``next_run_at``, which the services keep right. A change made around them (a
    queryset ``update()``, raw SQL) can leave it wrong: a job set active with no next fire, a cron
    edited without moving its next fire. Beat walks the whole table with this in small steps, so
    such a change is picked up within one pass. ``memo`` keeps each cron's next fire between calls
    (in microseconds since the epoch). ``now`` is beat's horizon: the fires due by then are claimed
    or being claimed (see ``claim_due_fires``' ``until``).

    A pass reads every job, so a row costs as little as it can: its times are read as integers on
    PostgreSQL, its calendars as one boolean (whether a deferred blackout may have moved its next
    fire), and a schedule's fire maths is done once per distinct cron (``memo``), not per job.
    """
    jobs = Job.objects.filter(pk__gt=after)
    if changed_since is not None:
        jobs = jobs.filter(_changed_since(changed_since))
    as_int = _times_as_integers()
    rows = list(
        jobs.order_by("pk")
        .annotate(
            next_us=EpochMicros("next_run_at") if as_int else F("next_run_at"),
            run_us=EpochMicros("run_at") if as_int else F("run_at"),
            deferred=ExpressionWrapper(
                Q(blackout_policy=Job.BlackoutPolicy.DEFER) & ~Q(calendars=[]), output_field=BooleanField()
            ),
        )
        .values_list(
            "id", "status", "next_us", "trigger", "cron", "interval_seconds", "run_us", "timezone",
            "jitter_seconds", "dst_policy", "deferred",
        )[:limit]
    )  # fmt: skip
    now_us = (now - _EPOCH) // timedelta(microseconds=1)
    second_us = now_us - now_us % 1_000_000  # now, to the second: where an interval counts from
    active, manual, cron_trigger = Job.Status.ACTIVE, Job.Trigger.MANUAL, Job.Trigger.CRON
    repaired = 0
    for job_id, status, next_us, trigger, cron, every, run_us, zone, jitter, dst_policy, deferred in rows:
        if not as_int:
            next_us, run_us = _micros(next_us), _micros(run_us)
        if next_us is not None and next_us > now_us and deferred:
            continue  # a fire deferred to a blackout's end (scheduling.blackouts) is not the schedule's own
        if status != active or trigger == manual:
            expected = None
        elif next_us is not None and next_us <= now_us:
            continue  # due: the claim computes the following fire from the schedule as it is then
        elif trigger == cron_trigger:
            offset = jitter_offset(job_id, jitter) if jitter else 0
            expected = _cron_next(job_id, (cron, zone, offset, dst_policy), next_us, now, now_us, memo)
        elif trigger == Job.Trigger.INTERVAL:
            offset = jitter_offset(job_id, jitter) if jitter else 0
            latest = second_us + ((every or 0) + offset) * 1_000_000
            expected = next_us if next_us is not None and next_us <= latest else latest
        else:  # date: a one-off that has not fired yet fires at its run_at; one that has, never again
            expected = run_us if run_us is not None and run_us > now_us else None
        if expected == next_us:
            continue
        stored = None if next_us is None else _from_micros(next_us)
        wanted = None if expected is None else _from_micros(expected)
        if Job.objects.filter(pk=job_id, status=status, next_run_at=stored).update(next_run_at=wanted):
            logger.warning(
                "job %s: next run moved from %s to %s (its schedule was changed around the services)",
                job_id, stored, wanted,
            )  # fmt: skip
            repaired += 1
    last = rows[-1][0] if len(rows) == limit else ""
    return last, repaired


def _cron_next(
    job_id: str,
    key: tuple[str, str, int, str],
    next_us: int | None,
    now: datetime,
    now_us: int,
    memo: dict[tuple[object, ...], int | None],
) -> int | None:
    """The first fire after ``now`` of the cron ``key`` (cron, time zone, jitter offset, DST
    policy), in microseconds, kept in ``memo`` until it has passed."""
    known = memo.get(key, 0)
    if known is not None and known <= now_us:  # not known yet (0), or passed
        cron, zone, offset, dst_policy = key
        schedule = Schedule(Job.Trigger.CRON, cron, None, None, zone, offset, dst_policy)
        try:
            known = _micros(schedule.first_fire(now))
        except Exception:  # a schedule broken around the services fires no more
            known = None
            if next_us is not None:
                logger.exception("job %s has a schedule that cannot be computed; it fires no more", job_id)
        memo[key] = known
    return known


def next_due_at() -> datetime | None:
    """When the earliest active job is due (index ``job_due_idx``)."""
    return (
        Job.objects.filter(status=Job.Status.ACTIVE, next_run_at__isnull=False)
        .order_by("next_run_at")
        .values_list("next_run_at", flat=True)
        .first()
    )
