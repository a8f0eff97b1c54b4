"""The alert sweep (``alerts.sweep``) runs every CRONTASK_ALERT_SWEEP_SECONDS in each worker (a
step of its consumer, ``AlertSweepStep``) and in beat (``crontask.scheduler``), from a thread of
its own; each time, the first process to ask does it (``heartbeats.services.take_turn``). So
``no_success`` alerts go out while any one of them is alive: beat stopped, or every worker gone.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from celery import bootsteps

from core.periodic import Periodic

if TYPE_CHECKING:
    from celery.worker.consumer import Consumer

logger = logging.getLogger(__name__)

# The heartbeat row that says when the sweep was last done, and by which process.
SWEEP_TURN = "alerts-sweep"

# Django's models are imported where they are used: this module is imported with the Celery app
# (crontask.celery), before Django's apps are ready.


def sweep_if_my_turn() -> None:
    """Sweep, unless another process did less than CRONTASK_ALERT_SWEEP_SECONDS ago."""
    from django.conf import settings

    from alerts.sweep import sweep
    from heartbeats.services import take_turn

    # A little short of the interval: two processes a few ms apart do not both skip a turn.
    every = settings.CRONTASK_ALERT_SWEEP_SECONDS
    if take_turn(SWEEP_TURN, every=every * 0.9):
        report = sweep()
        if report.opened or report.reminded or report.requeued or report.closed:
            logger.info(
                "alert sweep: %s incident(s) opened, %s reminder(s), %s notification(s) queued again, "
                "%s incident(s) closed (their job lost the rule's tags)",
                report.opened, report.reminded, report.requeued, report.closed,
            )  # fmt: skip


def alert_sweeper() -> Periodic:
    from django.conf import settings

    return Periodic(
        sweep_if_my_turn,
        every=settings.CRONTASK_ALERT_SWEEP_SECONDS,
        name="crontask-alert-sweep",
        what="sweep the alerts",
        logger=logger,
    )


class AlertSweepStep(bootsteps.StartStopStep):
    """The consumer step that runs the alert sweeper while the worker takes messages."""

    requires = ("celery.worker.consumer.tasks:Tasks",)
    label = "crontask alert sweep"

    def __init__(self, c: Consumer, **kwargs: Any) -> None:
        super().__init__(c, **kwargs)
        self.sweeper: Periodic | None = None

    def start(self, c: Consumer) -> None:
        if self.sweeper is None:
            self.sweeper = alert_sweeper()
        self.sweeper.start()

    def stop(self, c: Consumer) -> None:
        if self.sweeper is not None:
            self.sweeper.stop()

    def shutdown(self, c: Consumer) -> None:
        self.stop(c)

    def terminate(self, c: Consumer) -> None:
        self.stop(c)
