"""``crontask.scheduler:CrontaskScheduler``: beat's ``--scheduler`` (CELERY_BEAT_SCHEDULER), a
dotted path operators type, so it stays here while the scheduler lives in ``scheduling``.

The project adds one thing to it: beat's heartbeat, its row of ``heartbeats.Heartbeat`` (read by
/api/health/ and ``manage.py healthcheck``), wired here, where the project puts its parts together.
"""

from __future__ import annotations

from heartbeats.services import BEAT, record_heartbeat
from scheduling.scheduler import JobScheduler


class CrontaskScheduler(JobScheduler):
    def record_heartbeat(self) -> None:
        record_heartbeat(BEAT)
