"""Each worker's heartbeat, which /api/health/ reads instead of asking the workers (a broadcast).

``WorkerHeartbeatStep`` is a step of the worker's consumer: Celery starts it once the consumer
takes messages and stops it when the broker connection is lost (and starts it again after the
reconnection). So a worker records ``worker:<nodename>`` only while it can take work: one
UPDATE every ``WORKER_HEARTBEAT_SECONDS``, from a thread of its own, so that a slow database
never holds up the consumer's event loop. A clean shutdown deletes the row; a worker killed
outright leaves it, and the health report counts it no longer once it is a minute old.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from celery import bootsteps

from core.periodic import Periodic

if TYPE_CHECKING:
    from celery.worker.consumer import Consumer

# The name its lines have always had in the logs (the module was crontask.heartbeat).
logger = logging.getLogger("crontask.heartbeat")

# heartbeats.services (the Heartbeat model's functions) and Django's database are imported where
# they are used: this module is imported with the Celery app (crontask.celery), before Django's
# apps are ready, and importing a model then fails.


class WorkerHeartbeat:
    """Records one worker's heartbeat every ``every`` seconds from a daemon thread."""

    def __init__(self, nodename: str, *, every: float) -> None:
        from heartbeats.services import forget_stale_workers, worker_heartbeat_name

        self.nodename = nodename
        self.name = worker_heartbeat_name(nodename)
        self.every = every
        self._periodic = Periodic(
            self.record,
            every=every,
            name="crontask-heartbeat",
            what="record the worker heartbeat",
            logger=logger,
            first=forget_stale_workers,
        )

    @property
    def running(self) -> bool:
        return self._periodic.running

    def start(self) -> None:
        self._periodic.start()

    def stop(self, *, forget: bool = False) -> None:
        self._periodic.stop()
        if forget:
            self._periodic.quietly(self._forget, "delete the worker heartbeat")

    def beat(self) -> None:
        """Record the heartbeat now; a database error is logged (once per outage), never raised."""
        self._periodic.run_once()

    def record(self) -> None:
        from heartbeats.services import record_heartbeat

        record_heartbeat(self.name, hostname=self.nodename)

    def _forget(self) -> None:
        from heartbeats.services import forget_heartbeat

        forget_heartbeat(self.name)


class WorkerHeartbeatStep(bootsteps.StartStopStep):
    """The consumer step that runs a ``WorkerHeartbeat`` while the consumer takes messages."""

    requires = ("celery.worker.consumer.tasks:Tasks",)
    label = "crontask heartbeat"

    def __init__(self, c: Consumer, **kwargs: Any) -> None:
        super().__init__(c, **kwargs)
        self.heartbeat: WorkerHeartbeat | None = None

    def start(self, c: Consumer) -> None:
        from heartbeats.services import WORKER_HEARTBEAT_SECONDS

        if self.heartbeat is None:
            self.heartbeat = WorkerHeartbeat(c.hostname, every=WORKER_HEARTBEAT_SECONDS)
        self.heartbeat.start()

    def stop(self, c: Consumer) -> None:
        """The broker connection was lost (the heartbeat starts again once it is back), or the
        worker is stopping (``shutdown`` follows)."""
        if self.heartbeat is not None:
            self.heartbeat.stop()

    def shutdown(self, c: Consumer) -> None:
        if self.heartbeat is not None:
            self.heartbeat.stop(forget=True)

    def terminate(self, c: Consumer) -> None:
        self.stop(c)
