"""``crontask.scheduler:CrontaskScheduler``: beat's ``--scheduler`` (CELERY_BEAT_SCHEDULER), a
dotted path operators type, so it stays here while the scheduler lives in ``scheduling``
(``scheduling/scheduler.py``). It is also where beat takes its share of the alert sweep
(``alerts.worker``), which ``scheduling`` sits below."""

from __future__ import annotations

from core.periodic import Periodic
from scheduling.scheduler import JobScheduler


class CrontaskScheduler(JobScheduler):
    """The beat scheduler under its public name, sweeping the alerts from a thread of its own."""

    _alert_sweeper: Periodic | None = None

    def setup_schedule(self) -> None:
        super().setup_schedule()
        if self._alert_sweeper is None:
            from alerts.worker import alert_sweeper

            self._alert_sweeper = alert_sweeper()
            self._alert_sweeper.start()

    def close(self) -> None:
        if self._alert_sweeper is not None:
            self._alert_sweeper.stop()
            self._alert_sweeper = None
        super().close()
