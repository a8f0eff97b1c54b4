"""``crontask.scheduler:CrontaskScheduler``: beat's ``--scheduler`` (CELERY_BEAT_SCHEDULER), a
dotted path operators type, so it stays here while the scheduler lives in ``scheduling``
(``scheduling/scheduler.py``)."""

from __future__ import annotations

from scheduling.scheduler import JobScheduler


class CrontaskScheduler(JobScheduler):
    """The beat scheduler under its public name."""
