"""The beat scheduler: django-celery-beat's DatabaseScheduler, with jobs fired from the job table.

The parent keeps every enabled PeriodicTask in memory and reloads all of them whenever any
changes. Here it only handles the PeriodicTasks that do not belong to a job (a handful). Jobs
are fired from ``Job.next_run_at`` instead: each tick asks the database for the jobs due now
(an indexed range scan), claims each fire by moving ``next_run_at`` on with a conditional
update, and publishes ``execute_job(job_id, scheduled_for)`` in the same transaction. So a
change to a job is seen at the next tick at no cost proportional to the number of jobs, fires
are exact to the second, and two beats never claim the same fire.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from django.conf import settings
from django.db import DatabaseError, InterfaceError, close_old_connections, transaction
from django.db.models import QuerySet
from django.utils import timezone
from django_celery_beat.schedulers import DatabaseScheduler

from crontask.health import BEAT, record_heartbeat
from crontask.leader import LeaderLock
from jobs import services as job_services
from jobs.services import Fire

logger = logging.getLogger(__name__)


class CrontaskScheduler(DatabaseScheduler):
    #: Fires claimed and published per transaction.
    batch_size = 500

    def enabled_models_qs(self) -> QuerySet:
        return super().enabled_models_qs().filter(crontask_job__isnull=True)

    #: Seconds between two heartbeats written for /api/health/.
    heartbeat_every = 5.0
    _heartbeat_at = 0.0

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

    _leader: LeaderLock | None = None

    @property
    def leader(self) -> LeaderLock:
        if self._leader is None:
            self._leader = LeaderLock()
        return self._leader

    def close(self) -> None:
        self.leader.release()
        super().close()

    def fire_due_jobs(self) -> float:
        """Publish every job fire due now; return how long beat may sleep before the next one."""
        max_sleep = settings.CRONTASK_SCHEDULER_MAX_SLEEP
        if not self.leader.hold():
            return max_sleep  # another beat fires the jobs; look again at the next tick
        try:
            while True:
                with transaction.atomic():
                    fires = job_services.claim_due_fires(now=timezone.now(), limit=self.batch_size)
                    for fire in fires:
                        self.publish(fire)
                if len(fires) < self.batch_size:
                    break
            upcoming = job_services.next_due_at()
        except (DatabaseError, InterfaceError):
            logger.exception("database error while firing due jobs; retrying")
            close_old_connections()
            return max_sleep
        if upcoming is None:
            return max_sleep
        return min(max_sleep, max(0.0, (upcoming - timezone.now()).total_seconds()))

    def publish(self, fire: Fire) -> None:
        from runs.tasks import execute_job

        execute_job.apply_async(
            kwargs={"job_id": fire.job_id, "scheduled_for": fire.scheduled_for.isoformat()},
            producer=self.producer,
        )
        logger.info(
            "fired job_id=%s scheduled_for=%s", fire.job_id, fire.scheduled_for.isoformat(),
            extra={"job_id": fire.job_id, "scheduled_for": fire.scheduled_for.isoformat()},
        )  # fmt: skip
