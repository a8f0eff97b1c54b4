"""The runs that still need a message: the database is the record, the broker only the carrier.

Every run exists as a row before any message for it is sent. Beat records each fire it claims
as a ``queued`` run in the same transaction that claims it (``record_fires``) and sends the
message after that commits; a manual run or a retry is created ``queued`` by the request or the
worker and sent once that commits. ``sent_at`` says when its message was handed to the broker.

A queued run no worker has taken (``worker`` is empty) is waiting for its message, and beat
sends it again (``waiting_runs``) when
- it was never sent: the broker was down, or the process that created it could not reach it;
- it was sent before the last broker outage beat saw: a broker restarted without persistence
  (Redis by default) has lost it;
- it was sent over ``resend_after`` seconds ago, whatever happened to it (its worker's claim
  failed on a database error, and the message was acknowledged).
A message that arrives twice is harmless: the worker's claim takes a queued run once.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Q

from jobs.services import Fire
from runs.models import Run

#: Seconds a run created by another process is left to that process to send, before beat does.
SETTLE_SECONDS = 2.0
MISSED = (
    "Missed: beat could not fire it on time (it was stopped, or could not reach the database); "
    "the fire at {at} stands for it."
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
    """Record claimed fires as queued runs, not yet sent, and the fires each one stands for
    (``Fire.missed``) as skipped runs. Call in the transaction that claims them.

    A fire recorded already (a message from another scheduler made its run) is left as it is.
    """
    if not fires:
        return
    runs = []
    for fire in fires:
        runs.append(
            Run(
                job_id=fire.job_id,
                trigger=Run.Trigger.SCHEDULED,
                scheduled_for=fire.scheduled_for,
                attempt=1,
                status=Run.Status.QUEUED,
                queued_at=fire.scheduled_for,
            )
        )
        reason = MISSED.format(at=fire.scheduled_for.isoformat())
        runs += [
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
                error=reason,
            )
            for at in fire.missed
        ]
    Run.objects.bulk_create(runs, ignore_conflicts=True)


def mark_fires_sent(fires: Sequence[Fire], *, at: datetime) -> None:
    """Note that the messages of ``fires`` were handed to the broker (one UPDATE per fire time)."""
    by_time: dict[datetime, list[str]] = defaultdict(list)
    for fire in fires:
        by_time[fire.scheduled_for].append(fire.job_id)
    for scheduled_for, job_ids in by_time.items():
        Run.objects.filter(scheduled_for=scheduled_for, attempt=1, job_id__in=job_ids).update(sent_at=at)


def mark_runs_sent(pks: Sequence[int], *, at: datetime) -> None:
    if pks:
        Run.objects.filter(pk__in=pks).update(sent_at=at)


def waiting_runs(
    *, now: datetime, resend_after: float, lost_before: datetime | None = None, limit: int = 1000
) -> list[WaitingRun]:
    """Queued runs no worker has taken that need their message (again), oldest first.

    ``lost_before``: messages sent before this time may have been lost (the end of the last
    broker outage beat saw). ``resend_after``: seconds after which any message is presumed lost.
    """
    stale = now - timedelta(seconds=resend_after)
    if lost_before is not None:
        stale = max(stale, lost_before)
    due = now - timedelta(seconds=SETTLE_SECONDS)
    rows = (
        Run.objects.filter(status=Run.Status.QUEUED, worker="", queued_at__lte=due)
        .filter(Q(sent_at__isnull=True) | Q(sent_at__lt=stale))
        .order_by("queued_at")
        .values_list("pk", "job_id", "trigger", "scheduled_for", "attempt", "job__kind")[:limit]
    )
    return [WaitingRun(*row) for row in rows]
