"""The runs that still need a message: the database is the record, the broker only the carrier.

Every run exists as a row before any message for it is sent. Beat records each fire it claims
as a ``queued`` run in the same transaction that claims it (``record_fires``) and sends the
message after that commits; a manual run or a retry is created ``queued`` by the request or the
worker and sent once that commits (``runs.enqueue``). ``sent_at`` says when its message was handed to the broker.

A queued run no worker has taken (``worker`` is empty) is waiting for its message, and beat
sends it again (``waiting_runs``) when
- it was never sent: the broker was down, or the process that created it could not reach it;
- it was sent before the last broker outage beat saw: a broker restarted without persistence
  (Redis by default) has lost it;
- it was sent over ``resend_after`` seconds ago, whatever happened to it (a broker restart beat
  did not see, a message Celery dropped), and again after twice as long each time.
A message that arrives twice is harmless: the worker's claim takes a queued run once.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import DurationField, Exists, ExpressionWrapper, F, OuterRef, Q, QuerySet, Value
from django.utils.translation import gettext_lazy

from core.rows import insert_columns
from runs.models import Run
from scheduling.fires import Fire

#: Seconds a run created by another process is left to that process to send, before beat does.
SETTLE_SECONDS = 2.0
# Stored on the skipped runs in the language of beat's process (LANGUAGE_CODE).
MISSED = gettext_lazy(
    "Missed: it fell due while beat could not fire jobs (it was stopped, or cut off from the database or "
    "held up); the fire at %(at)s stands for it."
)
SUPERSEDED = gettext_lazy(
    "Missed: its message could not reach a worker in time (the broker was unreachable, or lost it); "
    "a later fire of the job stands for it."
)


@dataclass(frozen=True)
class WaitingRun:
    """A queued run beat is to send (again)."""

    pk: int
    job_id: str
    trigger: str
    scheduled_for: datetime | None
    attempt: int
    kind: str

    @property
    def fire(self) -> Fire | None:
        """The fire this run is, if it is a first attempt of a scheduled fire (sent as a fire, so
        the worker applies a fire's rules and an HTTP one can go in a batch)."""
        if self.trigger == Run.Trigger.SCHEDULED and self.attempt == 1 and self.scheduled_for is not None:
            return Fire(job_id=self.job_id, scheduled_for=self.scheduled_for, kind=self.kind)
        return None


def record_fires(fires: Sequence[Fire], *, now: datetime) -> None:
    """Record claimed fires as queued runs, and the fires each one stands for (``Fire.missed``) as
    skipped runs. Call in the transaction that claims them.

    ``sent_at`` is set to ``now``: beat sends them once this commits, and clears it for those it
    could not send (``mark_fires_unsent``), which saves an UPDATE per batch when all goes well. If
    beat dies in between, they count as sent, and are sent again after ``resend_after``.
    A fire recorded already (a message from another scheduler made its run) is left as it is.
    """
    if not fires:
        return
    # The queued runs differ only by job, time and target: their other fields are sent once
    # (core.rows.insert_columns; a burst of 10,000 fires spent most of beat's CPU here).
    insert_columns(
        Run,
        same={
            "trigger": Run.Trigger.SCHEDULED,
            "attempt": 1,
            "status": Run.Status.QUEUED,
            "sent_at": now,
        },
        each={
            "job_id": [fire.job_id for fire in fires],
            "scheduled_for": [fire.scheduled_for for fire in fires],
            "queued_at": [fire.scheduled_for for fire in fires],
            "target": [fire.target for fire in fires],
        },
    )
    skipped = [
        Run(
            job_id=fire.job_id,
            trigger=Run.Trigger.SCHEDULED,
            scheduled_for=at,
            attempt=1,
            status=Run.Status.SKIPPED,
            queued_at=at,
            started_at=now,
            finished_at=now,
            duration_ms=0,
            error=MISSED % {"at": fire.scheduled_for.isoformat()},
            target=fire.target,
        )
        for fire in fires
        for at in fire.missed
    ]
    if skipped:  # rare: fires a beat that fell behind stands for
        Run.objects.bulk_create(skipped, ignore_conflicts=True)


def record_held(held: Sequence[tuple[Fire, str]], *, now: datetime) -> None:
    """Record fires beat holds back (a blackout: ``scheduling.blackouts``) as skipped runs with
    the reason, and the fires each stands for as missed. Call in the transaction that claims them."""
    if not held:
        return
    runs = []
    for fire, reason in held:
        for at, why in (
            (fire.scheduled_for, reason),
            *((m, MISSED % {"at": fire.scheduled_for.isoformat()}) for m in fire.missed),
        ):
            runs.append(
                Run(
                    job_id=fire.job_id, trigger=Run.Trigger.SCHEDULED, scheduled_for=at, attempt=1,
                    status=Run.Status.SKIPPED, queued_at=at, started_at=now, finished_at=now, duration_ms=0,
                    error=why, target=fire.target,
                )
            )  # fmt: skip
    Run.objects.bulk_create(runs, ignore_conflicts=True)


def mark_fires_unsent(fires: Sequence[Fire]) -> None:
    """Note that the messages of recorded ``fires`` could not be sent (one UPDATE per fire time)."""
    by_time: dict[datetime, list[str]] = defaultdict(list)
    for fire in fires:
        by_time[fire.scheduled_for].append(fire.job_id)
    for scheduled_for, job_ids in by_time.items():
        Run.objects.filter(scheduled_for=scheduled_for, attempt=1, job_id__in=job_ids, worker="").update(sent_at=None)


def waiting_runs(
    *, now: datetime, resend_after: float, lost_before: datetime | None = None, limit: int = 1000
) -> list[WaitingRun]:
    """Queued runs no worker has taken that need their message (again), oldest first.

    ``lost_before``: messages sent before this time may have been lost (the end of the last
    broker outage beat saw). ``resend_after``: seconds after which a message is presumed lost;
    after each sending the wait doubles (a run is sent again once it has waited since its last
    sending as long as it had waited before it), so a backlog that workers are slow to drain is
    not flooded with copies.
    """
    rows = (
        _waiting(now, resend_after, lost_before)
        .order_by("queued_at")
        .values_list("pk", "job_id", "trigger", "scheduled_for", "attempt", "job__kind")[:limit]
    )
    return [WaitingRun(*row) for row in rows]


def coalesce_waiting(*, now: datetime, resend_after: float, lost_before: datetime | None = None) -> int:
    """Skip, with the reason, each waiting fire (see ``waiting_runs``) of a job whose later fire is
    due too: after a broker outage a job runs once, for its latest fire, not once per fire it
    missed (as after beat or the database was down, ``scheduling.fires.claim_due_fires``). Returns
    how many were skipped."""
    later = Run.objects.filter(
        job_id=OuterRef("job_id"),
        trigger=Run.Trigger.SCHEDULED,
        attempt=1,
        scheduled_for__gt=OuterRef("scheduled_for"),
        scheduled_for__lte=now,
    )
    superseded = _waiting(now, resend_after, lost_before).filter(
        Exists(later), trigger=Run.Trigger.SCHEDULED, attempt=1
    )
    return Run.objects.filter(pk__in=superseded.values("pk")).update(
        status=Run.Status.SKIPPED, started_at=now, finished_at=now, duration_ms=0, error=str(SUPERSEDED)
    )


def _waiting(now: datetime, resend_after: float, lost_before: datetime | None) -> QuerySet[Run]:
    due = now - timedelta(seconds=SETTLE_SECONDS)
    stale = Q(sent_at__lt=now - timedelta(seconds=resend_after), since_queued__lt=F("since_sent"))
    lost = Q(sent_at__lt=lost_before) if lost_before is not None else Q(pk__in=[])
    return (
        Run.objects.filter(status=Run.Status.QUEUED, worker="", queued_at__lte=due)
        .alias(
            since_queued=ExpressionWrapper(F("sent_at") - F("queued_at"), output_field=DurationField()),
            since_sent=ExpressionWrapper(Value(now) - F("sent_at"), output_field=DurationField()),
        )
        .filter(Q(sent_at__isnull=True) | lost | stale)
    )
