"""The beat scheduler: django-celery-beat's DatabaseScheduler, with jobs fired from the job table.

The parent keeps every enabled PeriodicTask in memory and reloads all of them whenever any
changes. Here it only handles the PeriodicTasks that do not belong to a job (a handful). Jobs
are fired from ``Job.next_run_at`` instead: each tick asks the database for the jobs due now
(an indexed range scan), claims them by moving ``next_run_at`` on and records each fire as a
``queued`` run, in one transaction, then publishes ``execute_job(job_id, scheduled_for)``
(``scheduling.publisher``). So beat holds no job in memory, a change to a job is seen at the
next tick at no cost proportional to the number of jobs, fires are exact to the second, and two
beats never claim the same fire.

"Due now" reaches CRONTASK_FIRE_LEAD_MS ahead: a fire is published that much before its time,
and the worker that takes it holds it until then (``runs.execution``), so the message's trip and
the run's claim are paid before the fire is due rather than after.

The database is the record and the broker only the carrier (``scheduling.outbox``): a fire is
recorded before its message is sent, so a broker outage loses nothing. While the broker is
down beat goes on claiming and recording fires on time, tries the broker again every few
seconds (``core.outage.Outage``), and sends what waited once it is back; it also sends again
any queued run whose message may have been lost. Neither a broker nor a database error stops it.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from celery.beat import ScheduleEntry
from django.conf import settings
from django.db import DatabaseError, InterfaceError, close_old_connections, transaction
from django.db.models import QuerySet
from django.utils import timezone
from django_celery_beat.schedulers import DatabaseScheduler
from kombu import Producer

from core import metrics
from core.outage import Outage
from heartbeats.services import BEAT, record_heartbeat
from jobs import services as job_services
from jobs.beat_sync import EXECUTE_TASK
from jobs.models import Job
from runs.enqueue import mark_runs_sent
from scheduling import blackouts, outbox
from scheduling import fires as job_fires
from scheduling.fires import Fire
from scheduling.leader import LeaderLock
from scheduling.publisher import FirePublisher, broker_errors

logger = logging.getLogger(__name__)

DATABASE_ERRORS = (DatabaseError, InterfaceError)


class JobScheduler(DatabaseScheduler):
    #: Fires claimed and published per transaction.
    batch_size = 500
    #: Seconds between two heartbeats written for /api/health/.
    heartbeat_every = 5.0
    #: Seconds between two steps of the reconciliation (see ``reconcile``), at least.
    reconcile_step = 1.0
    #: Jobs read at most per step of a pass that reads them all (about 4 ms of beat's CPU).
    reconcile_max_rows = 1000
    #: The share of a core the reconciliation's steps may take: a step that cost more puts the
    #: next one off in proportion (at most ``reconcile_max_wait`` seconds after it).
    reconcile_cpu_share = 0.005
    reconcile_max_wait = 10.0
    #: Beat's own CPU time (this thread's), what ``reconcile_cpu_share`` is counted in.
    cpu_clock = staticmethod(time.thread_time)
    #: Seconds between two looks for queued runs whose message is missing (see ``send_waiting``).
    waiting_every = 2.0
    #: Queued runs sent again per message batch.
    waiting_batch = 500
    #: Seconds between two looks for paused jobs whose ``paused_until`` has come.
    resume_every = 1.0

    _heartbeat_at = 0.0
    _leader: LeaderLock | None = None
    _publisher: FirePublisher | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._reconcile_after = ""  # the last job id the current reconciliation pass looked at
        self._reconcile_pass_at = -math.inf  # when the current pass started (monotonic)
        self._reconcile_next = 0.0
        self._reconcile_limit = 500
        self._reconcile_memo: dict[tuple[object, ...], int | None] = {}  # a cron's next fire (µs)
        self._reconcile_since: int | None = None  # the current pass reads only the jobs written since
        self._reconcile_mark: int | None = None  # taken as the current pass started: the next one's since
        self._waiting_next = 0.0
        self._resume_next = 0.0
        self.calendars = blackouts.CalendarCache()
        self.broker = Outage("broker", log=logger)
        self._broker_errors: tuple[type[BaseException], ...] = ()
        # Beat looks for the database again every second at most: fires it could not claim meanwhile
        # are claimed late (and recorded), so it should not wait long.
        self.database = Outage("database", log=logger, first_delay=0.2, max_delay=1.0)
        super().__init__(*args, **kwargs)
        if not kwargs.get("max_interval"):
            # What beat really sleeps at most (``tick`` returns no more): its banner's "maxinterval"
            # said the stock 5 s.
            self.max_interval = settings.CRONTASK_SCHEDULER_MAX_SLEEP  # type: ignore[assignment]  # a float: celery-types says int

    def enabled_models_qs(self) -> QuerySet:
        """The periodic tasks the parent schedules: housekeeping (the reaper), not the jobs', which
        fire from ``Job.next_run_at``. The parent's own query also prunes crontabs by hour, which
        takes most of a second of CPU per reload at 1,000 jobs: useless for a handful of tasks."""
        return self.Model.objects.enabled().exclude(task=EXECUTE_TASK)

    def setup_schedule(self) -> None:
        """The parent's entries and the system jobs; beat waits here for a database that is down."""
        while True:
            try:
                super().setup_schedule()
                created = job_services.ensure_system_jobs()
            except DATABASE_ERRORS as exc:
                self._database_failed(exc, consequence="beat waits for it to start")
                time.sleep(self.database.delay)
                continue
            self.database.ok()
            break
        if created:
            logger.info("created system jobs: %s", ", ".join(created))

    def tick(self, *args: Any, **kwargs: Any) -> float:
        try:
            until_parent = super().tick(*args, **kwargs)
        except DATABASE_ERRORS as exc:  # the parent's bookkeeping: its tasks wait for the database
            self._database_failed(exc)
            until_parent = self.database.delay
        self.heartbeat()
        return min(until_parent, self.fire_due_jobs())

    def schedule_changed(self) -> bool:
        """The parent's check, skipped while the database is down (it would log an error every
        tick; ``fire_due_jobs`` finds out when it is back)."""
        return False if self.database.down else super().schedule_changed()

    def sync(self) -> None:
        if not self.database.down:  # else the entries stay dirty and are written once it is back
            super().sync()

    @property
    def producer(self) -> Producer | None:  # type: ignore[override]
        """What the parent's tick hands to ``apply_entry``: beat's own connection, never a new one
        made there (the parent's would wait for a broker that is down, and stop firing jobs)."""
        return self._publisher.producer if self._publisher is not None else None

    def apply_entry(self, entry: ScheduleEntry, producer: Producer | None = None) -> None:
        """Send a housekeeping task (the reaper) on beat's broker connection. While the broker is
        down it is skipped, not waited for: it is due again at its next interval."""
        if not self.broker.due():
            return
        try:
            publisher = self.publisher()
            logger.info("Scheduler: Sending due task %s (%s)", entry.name, entry.task)
            self.apply_async(entry, producer=publisher.producer, advance=False)
        except Exception as exc:  # noqa: BLE001 - the parent's apply_entry logs any failure too
            self._broker_failed(exc)
            return
        self._broker_ok()

    def heartbeat(self) -> None:
        if time.monotonic() - self._heartbeat_at < self.heartbeat_every or not self.database.due():
            return
        try:
            self.record_heartbeat()
        except DATABASE_ERRORS as exc:
            self._database_failed(exc)
            return
        self._heartbeat_at = time.monotonic()

    def record_heartbeat(self) -> None:
        """Write beat's sign of life: its ``heartbeats.Heartbeat`` row, read by /api/health/ and
        ``manage.py healthcheck``."""
        record_heartbeat(BEAT)

    @property
    def leader(self) -> LeaderLock:
        if self._leader is None:
            self._leader = LeaderLock()
        return self._leader

    def close(self) -> None:
        self.leader.release()
        if self._publisher is not None:
            self._publisher.close()
            self._publisher = None
        super().close()

    def fire_due_jobs(self) -> float:
        """Claim every job fire due now or within CRONTASK_FIRE_LEAD_MS (the worker holds such a
        fire until its time), record it as a queued run and publish it; send what is waiting for
        its message. Return how long beat may sleep before the next fire."""
        max_sleep = settings.CRONTASK_SCHEDULER_MAX_SLEEP
        lead = timedelta(milliseconds=settings.CRONTASK_FIRE_LEAD_MS)
        if not self.database.due():
            return min(max_sleep, self.database.delay)
        if not self.leader.hold():
            return max_sleep  # another beat fires the jobs; look again at the next tick
        try:
            self.resume_due()  # first: a job back now has its catch-up fire claimed in this tick
            while True:
                with transaction.atomic():
                    now = timezone.now()
                    claimed = job_fires.claim_due_fires(now=now, until=now + lead, limit=self.batch_size)
                    fires = blackouts.hold_back(claimed, now=now, cache=self.calendars)
                    outbox.record_fires(fires, now=now)
                metrics.observe_claims(fires, now=now)  # once the claim is committed
                self.send_fires(fires)  # after the commit: the worker's claim finds the run recorded
                if len(claimed) < self.batch_size:
                    break
            self.send_waiting()
            self.reconcile()
            upcoming = job_fires.next_due_at()
        except DATABASE_ERRORS as exc:
            self._database_failed(exc, consequence="fires due meanwhile are claimed when it is back")
            return min(max_sleep, self.database.delay)
        self.database.ok()
        if upcoming is None:
            return max_sleep
        return min(max_sleep, max(0.0, (upcoming - lead - timezone.now()).total_seconds()))

    def resume_due(self) -> None:
        """Resume the jobs paused until now (``jobs.services.job_resume_due``), every ``resume_every``
        seconds: one indexed query (``job_paused_until_idx``) when none is due."""
        clock = time.monotonic()
        if clock < self._resume_next:
            return
        self._resume_next = clock + self.resume_every
        resumed = job_services.job_resume_due(now=timezone.now())
        if resumed:
            logger.info("resumed %d job(s) paused until now: %s", len(resumed), ", ".join(resumed[:20]))

    def send_fires(self, fires: Sequence[Fire]) -> None:
        """Publish recorded fires. If the broker cannot take them they stay queued and unsent, and
        ``send_waiting`` sends them once it is back (beat goes on claiming fires meanwhile)."""
        if not fires:
            return
        if self.broker.due():
            try:
                self.publish(fires)
            except Exception as first:  # noqa: BLE001 - whatever the transport raises, the fires are safe
                self._reconnect(first)
                try:  # once more on a new connection: an idle one may just have been closed
                    self.publish(fires)
                except Exception as exc:  # noqa: BLE001 - as above
                    self._broker_failed(exc)
                else:
                    self._broker_ok()
                    return
            else:
                self._broker_ok()
                return
        outbox.mark_fires_unsent(fires)

    def send_waiting(self) -> None:
        """Send the queued runs no worker has taken whose message is missing or may have been lost
        (see ``scheduling.outbox``): every ``waiting_every`` seconds, and as soon as the broker is back.
        A job with several fires waiting runs once, for the latest (``outbox.coalesce_waiting``)."""
        clock = time.monotonic()
        if clock < self._waiting_next or not self.broker.due():
            return
        self._waiting_next = clock + self.waiting_every
        if self.broker.down:  # back yet? (then what was sent before the outage counts as lost)
            try:
                self.publish([])
            except Exception as exc:  # noqa: BLE001 - as in send_fires
                self._broker_failed(exc)
                return
            self._broker_ok()
        recovered = self.broker.recovered_at
        resend_after = settings.CRONTASK_LOST_GRACE_SECONDS / 2
        lost_before = datetime.fromtimestamp(recovered, tz=UTC) if recovered is not None else None
        skipped = outbox.coalesce_waiting(now=timezone.now(), resend_after=resend_after, lost_before=lost_before)
        metrics.count_fires_superseded(skipped)
        if skipped:
            logger.warning("skipped %d fire(s) whose message could not reach a worker in time: a later fire of "
                           "each job stands for them", skipped)  # fmt: skip
        for _ in range(4):  # at most 4 batches a tick: fires due meanwhile are not held up
            runs = outbox.waiting_runs(
                now=timezone.now(), limit=self.waiting_batch, resend_after=resend_after, lost_before=lost_before
            )
            if not runs:
                return
            try:
                self.publish([run.fire for run in runs if run.fire is not None])
                self.publisher().publish_runs([run for run in runs if run.fire is None])
            except Exception as exc:  # noqa: BLE001 - as in send_fires
                self._broker_failed(exc)
                return
            mark_runs_sent([run.pk for run in runs], at=timezone.now())
            logger.warning("sent %d queued run(s) whose message was missing or may have been lost", len(runs))
            if len(runs) < self.waiting_batch:
                return
        self._waiting_next = 0.0  # more are waiting: go on at the next tick

    def publish(self, fires: Sequence[Fire]) -> None:
        """Hand ``fires`` to the broker (raises what the transport raises if it cannot)."""
        self.publisher().publish(fires)

    def publisher(self) -> FirePublisher:
        if self._publisher is None:
            self._publisher = FirePublisher.connect(self.app)
        return self._publisher

    def _broker_failed(self, exc: BaseException) -> None:
        self._broker_errors = self._broker_errors or broker_errors(self.app)
        if not isinstance(exc, self._broker_errors):  # not the broker's doing: say what it was
            logger.error("publishing failed: %r", exc, exc_info=exc)
        self.broker.failed(exc, consequence="fires are recorded as queued runs and sent when it is back")
        self._reconnect(exc)

    def _reconnect(self, exc: BaseException) -> None:
        """Drop beat's broker connection after ``exc``: the next publish makes a new one."""
        logger.debug("publishing failed (%s): dropping the broker connection", exc)
        if self._publisher is not None:
            self._publisher.close()
            self._publisher = None

    def _broker_ok(self) -> None:
        if self.broker.ok():
            self._waiting_next = 0.0  # send what waited at once

    def _database_failed(self, exc: BaseException, consequence: str = "") -> None:
        self.database.failed(exc, consequence=consequence)
        close_old_connections()

    def reconcile(self) -> None:
        """One small step of the walk over every job that repairs ``next_run_at`` left wrong by a
        change made around the services (see ``scheduling.fires.reconcile_next_runs``).

        A pass starts at most every CRONTASK_RECONCILE_SECONDS. The first one after beat starts
        reads every job, spread over that time (a step a second, sized from the number of jobs, at
        most ``reconcile_max_rows``: above 240,000 jobs it takes longer). A step waits longer when
        the one before took more than ``reconcile_cpu_share`` of beat's CPU (0.5 % of a core: a
        step of 1,000 jobs costs about 4 ms, or more while the crons' next fires are first
        computed), up to ``reconcile_max_wait``. On PostgreSQL each later
        pass reads only the jobs written since the previous pass began (``fires.change_mark``),
        which the database finds for it: a few rows, not the table. So such a change is picked up
        within about two periods, at a cost that does not grow with the number of jobs.
        """
        clock = time.monotonic()
        if clock < self._reconcile_next:
            return
        period = settings.CRONTASK_RECONCILE_SECONDS
        starting = not self._reconcile_after
        since, mark, limit = self._reconcile_since, self._reconcile_mark, self._reconcile_limit
        if starting:
            if clock - self._reconcile_pass_at < period:
                self._reconcile_next = self._reconcile_pass_at + period
                return
            since, mark = self._reconcile_mark, job_fires.change_mark()
            if since is not None and (mark is None or mark < since):  # a database restored, or another one
                since = None  # behind the last mark: no row can be told apart by it, so every job is read
            if since is None:  # every job: a step's share, within the budget
                steps = max(1.0, 0.8 * period / self.reconcile_step)
                share = math.ceil(Job.objects.count() / steps)
                limit = min(self.reconcile_max_rows, max(200, share))
            else:  # the jobs written since: few, found by the database
                limit = self.reconcile_max_rows
        self._reconcile_next = clock + self.reconcile_step  # after a failure too: the next step retries
        # Read at beat's horizon: a fire claimed ahead (within the lead) already has its following
        # fire as next_run_at, which the current time alone would take for a fire skipped.
        horizon = timezone.now() + timedelta(milliseconds=settings.CRONTASK_FIRE_LEAD_MS)
        cpu = self.cpu_clock()
        self._reconcile_after, repaired = job_fires.reconcile_next_runs(
            now=horizon, after=self._reconcile_after, limit=limit, memo=self._reconcile_memo, changed_since=since
        )
        # Paced by its cost: a step that took more than its share (the first ones of a pass, which
        # compute each cron's next fire once; a slow machine) waits longer before the next.
        wait = (self.cpu_clock() - cpu) / self.reconcile_cpu_share
        self._reconcile_next = clock + min(self.reconcile_max_wait, max(self.reconcile_step, wait))
        if starting:  # the pass has begun: only now do its marks replace the last pass's (a first
            # step that failed leaves them, so the pass is made again from the same mark)
            self._reconcile_pass_at = clock
            self._reconcile_since, self._reconcile_mark, self._reconcile_limit = since, mark, limit
        if repaired:
            logger.warning("repaired the next run of %d job(s) changed around the services", repaired)
