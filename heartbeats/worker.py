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
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from celery import bootsteps

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
        from heartbeats.services import worker_heartbeat_name

        self.nodename = nodename
        self.name = worker_heartbeat_name(nodename)
        self.every = every
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failing = False

    def start(self) -> None:
        # An event per thread: a thread that outlived its stop's wait still ends at its next beat.
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(self._stop,), name="crontask-heartbeat", daemon=True)
        self._thread.start()

    def stop(self, *, forget: bool = False) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)  # at most one write (bounded by the connect timeout) to finish
            self._thread = None
        if forget:
            self._forget()

    def _run(self, stop: threading.Event) -> None:
        from django.db import connections

        from heartbeats.services import forget_stale_workers

        try:
            self._quietly(forget_stale_workers, "forget stale worker heartbeats")
            while not stop.is_set():
                self.beat()
                if stop.wait(self.every):
                    return
        finally:
            connections.close_all()  # this thread's connections only

    def beat(self) -> None:
        """Record the heartbeat now; a database error is logged (once per outage), never raised."""
        from heartbeats.services import record_heartbeat

        self._quietly(lambda: record_heartbeat(self.name, hostname=self.nodename), "record the worker heartbeat")

    def _forget(self) -> None:
        from heartbeats.services import forget_heartbeat

        self._quietly(lambda: forget_heartbeat(self.name), "delete the worker heartbeat")

    def _quietly(self, write: Callable[[], object], what: str) -> None:
        from django.db import DatabaseError, close_old_connections, connection

        if not connection.in_atomic_block:  # (a caller's transaction, in tests, is not ours to end)
            close_old_connections()  # as between two requests: drop a connection that is broken or too old
        try:
            write()
        except DatabaseError as exc:
            if not self._failing:
                logger.warning("could not %s: %s", what, exc)
            self._failing = True
            return
        if self._failing:
            logger.info("worker heartbeat recorded again")
        self._failing = False


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
