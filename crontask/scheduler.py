"""The beat scheduler: django-celery-beat's DatabaseScheduler, with jobs fired from the job table.

The parent keeps every enabled PeriodicTask in memory and reloads all of them whenever any
changes. Here it only handles the PeriodicTasks that do not belong to a job (a handful). Jobs
are fired from ``Job.next_run_at`` instead: each tick asks the database for the jobs due now
(an indexed range scan), claims them by moving ``next_run_at`` on, and publishes
``execute_job(job_id, scheduled_for)`` in the same transaction. So beat holds no job in memory,
a change to a job is seen at the next tick at no cost proportional to the number of jobs, fires
are exact to the second, and two beats never claim the same fire.

"Due now" reaches CRONTASK_FIRE_LEAD_MS ahead: a fire is published that much before its time,
and the worker that takes it holds it until then (``runs.services``), so the message's trip and
the run's claim are paid before the fire is due rather than after.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta
from typing import Any

from celery import Celery
from django.conf import settings
from django.db import DatabaseError, InterfaceError, close_old_connections, transaction
from django.db.models import QuerySet
from django.utils import timezone
from django_celery_beat.schedulers import DatabaseScheduler
from kombu import Producer
from kombu.common import maybe_declare
from kombu.utils.uuid import uuid

from crontask.health import BEAT, record_heartbeat
from crontask.leader import LeaderLock
from jobs import services as job_services
from jobs.beat_sync import EXECUTE_FIRES_TASK, EXECUTE_TASK
from jobs.models import Job
from jobs.services import Fire

logger = logging.getLogger(__name__)


class FirePublisher:
    """Publishes the messages for claimed fires, a batch at a time.

    A fire goes out as ``execute_job(job_id, scheduled_for)``. The HTTP fires of a burst go out
    up to CRONTASK_FIRE_BATCH_SIZE to a message, ``execute_fires(fires=[[job_id,
    scheduled_for], ...])``, and a worker makes their calls at once: a run costs a few ms of
    worker CPU on its own, mostly Celery's and the database's, and a batch pays that once.

    ``Task.apply_async`` looks up a dozen configuration values per call, through Django's lazy
    settings: about 1 ms of CPU per message, 10 s for a burst of 10,000. Here the route is
    resolved once, each message is built by Celery's own ``as_task_v2`` (the same protocol-2
    message a worker expects), and a batch goes out through kombu's publish batch (one Redis
    pipeline; transports without batching publish one by one). Measured by ``bench/run``.
    """

    def __init__(self, app: Celery, producer: Producer) -> None:
        self.app = app
        self.producer = producer
        self.queue = app.amqp.router.route({}, EXECUTE_TASK)["queue"]
        self.origin = f"beat{os.getpid()}@{socket.gethostname()}"
        self.batch_size = settings.CRONTASK_FIRE_BATCH_SIZE
        # Declared once here, not per message: kombu's declaration cache misses for this queue,
        # and on Redis each declaration is two round trips.
        maybe_declare(self.queue, producer.channel, retry=True)

    def publish(self, fires: Sequence[Fire]) -> None:
        if not fires:
            return
        with self.producer.batch(max_size=len(fires)):
            for task, kwargs in self.messages(fires):
                self.send(task, kwargs)
        logger.info(
            "fired %d job(s), due %s to %s",
            len(fires), fires[0].scheduled_for.isoformat(), fires[-1].scheduled_for.isoformat(),
            extra={"fires": len(fires)},
        )  # fmt: skip

    def messages(self, fires: Sequence[Fire]) -> Iterator[tuple[str, dict[str, Any]]]:
        """(task, kwargs) of each message for ``fires``: the HTTP fires due at the same time in
        batches (a worker starts a batch's calls together, at their time), the others alone."""
        due_together: dict[datetime, list[Fire]] = defaultdict(list)
        for fire in fires:
            if fire.kind == Job.Kind.HTTP and self.batch_size > 1:
                due_together[fire.scheduled_for].append(fire)
            else:
                yield EXECUTE_TASK, _alone(fire)
        for calls in due_together.values():
            # Spread evenly: 11 calls go as 6 + 5, not 10 + 1.
            count = math.ceil(len(calls) / self.batch_size)
            for i in range(count):
                batch = calls[i::count]
                if len(batch) == 1:
                    yield EXECUTE_TASK, _alone(batch[0])
                else:
                    yield EXECUTE_FIRES_TASK, {"fires": [[f.job_id, f.scheduled_for.isoformat()] for f in batch]}

    def send(self, task: str, kwargs: dict[str, Any]) -> None:
        task_id = uuid()
        message = self.app.amqp.as_task_v2(
            task_id, task, (), kwargs, origin=self.origin, argsrepr="()", kwargsrepr=repr(kwargs)
        )
        self.producer.publish(
            message.body,
            exchange="",  # straight to the queue: a named exchange costs a lookup per message on Redis
            routing_key=self.queue.name,
            serializer="json",
            headers=message.headers,
            **message.properties,
        )
        logger.debug("published %s %s", task, kwargs)


def _alone(fire: Fire) -> dict[str, Any]:
    """The kwargs of ``execute_job`` for one fire."""
    return {"job_id": fire.job_id, "scheduled_for": fire.scheduled_for.isoformat()}


class CrontaskScheduler(DatabaseScheduler):
    #: Fires claimed and published per transaction.
    batch_size = 500
    #: Seconds between two heartbeats written for /api/health/.
    heartbeat_every = 5.0
    #: Seconds between two steps of the reconciliation (see ``reconcile``).
    reconcile_step = 1.0

    _heartbeat_at = 0.0
    _leader: LeaderLock | None = None
    _publisher: FirePublisher | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._reconcile_after = ""  # the last job id the current reconciliation pass looked at
        self._reconcile_pass_at = -math.inf  # when the current pass started (monotonic)
        self._reconcile_next = 0.0
        self._reconcile_limit = 500
        self._reconcile_memo: dict[tuple[str, str], Any] = {}
        super().__init__(*args, **kwargs)

    def enabled_models_qs(self) -> QuerySet:
        """The periodic tasks the parent schedules: housekeeping (the reaper), not the jobs', which
        fire from ``Job.next_run_at``. The parent's own query also prunes crontabs by hour, which
        takes most of a second of CPU per reload at 1,000 jobs: useless for a handful of tasks."""
        return self.Model.objects.enabled().exclude(task=EXECUTE_TASK)

    def setup_schedule(self) -> None:
        super().setup_schedule()
        created = job_services.ensure_system_jobs()
        if created:
            logger.info("created system jobs: %s", ", ".join(created))

    def tick(self, *args: Any, **kwargs: Any) -> float:
        until_parent = super().tick(*args, **kwargs)
        self.heartbeat()
        return min(until_parent, self.fire_due_jobs())

    def heartbeat(self) -> None:
        if time.monotonic() - self._heartbeat_at < self.heartbeat_every:
            return
        try:
            record_heartbeat(BEAT)
        except (DatabaseError, InterfaceError):
            logger.exception("could not write beat's heartbeat")
            close_old_connections()
            return
        self._heartbeat_at = time.monotonic()

    @property
    def leader(self) -> LeaderLock:
        if self._leader is None:
            self._leader = LeaderLock()
        return self._leader

    def close(self) -> None:
        self.leader.release()
        super().close()

    def fire_due_jobs(self) -> float:
        """Publish every job fire due now or within CRONTASK_FIRE_LEAD_MS (the worker holds such a
        fire until its time); return how long beat may sleep before the next one."""
        max_sleep = settings.CRONTASK_SCHEDULER_MAX_SLEEP
        lead = timedelta(milliseconds=settings.CRONTASK_FIRE_LEAD_MS)
        if not self.leader.hold():
            return max_sleep  # another beat fires the jobs; look again at the next tick
        try:
            while True:
                with transaction.atomic():
                    now = timezone.now()
                    fires = job_services.claim_due_fires(now=now, until=now + lead, limit=self.batch_size)
                    self.publish(fires)
                if len(fires) < self.batch_size:
                    break
            self.reconcile()
            upcoming = job_services.next_due_at()
        except (DatabaseError, InterfaceError):
            logger.exception("database error while firing due jobs; retrying")
            close_old_connections()
            return max_sleep
        if upcoming is None:
            return max_sleep
        return min(max_sleep, max(0.0, (upcoming - lead - timezone.now()).total_seconds()))

    def publish(self, fires: Sequence[Fire]) -> None:
        if self._publisher is None or self._publisher.producer is not self.producer:
            self._publisher = FirePublisher(self.app, self.producer)
        self._publisher.publish(fires)

    def reconcile(self) -> None:
        """One small step of the walk over every job that repairs ``next_run_at`` left wrong by a
        change made around the services (see ``jobs.services.reconcile_next_runs``).

        A pass starts at most every CRONTASK_RECONCILE_SECONDS and is spread over that time (a
        step a second, sized from the number of jobs), so such a change is picked up within
        about two periods at a cost of a few rows a second.
        """
        clock = time.monotonic()
        if clock < self._reconcile_next:
            return
        period = settings.CRONTASK_RECONCILE_SECONDS
        if not self._reconcile_after:
            if clock - self._reconcile_pass_at < period:
                self._reconcile_next = self._reconcile_pass_at + period
                return
            self._reconcile_pass_at = clock
            steps = max(1.0, 0.8 * period / self.reconcile_step)
            self._reconcile_limit = max(200, math.ceil(Job.objects.count() / steps))
        # Read at beat's horizon: a fire claimed ahead (within the lead) already has its following
        # fire as next_run_at, which the current time alone would take for a fire skipped.
        horizon = timezone.now() + timedelta(milliseconds=settings.CRONTASK_FIRE_LEAD_MS)
        self._reconcile_after, repaired = job_services.reconcile_next_runs(
            now=horizon, after=self._reconcile_after, limit=self._reconcile_limit, memo=self._reconcile_memo
        )
        self._reconcile_next = clock + self.reconcile_step
        if repaired:
            logger.warning("repaired the next run of %d job(s) changed around the services", repaired)
