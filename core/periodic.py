"""``Periodic``: a task done every few seconds from a daemon thread of a long-running process (a
worker's heartbeat, the alert sweep), that never holds up the process's own loop and never
stops for a database that is away.

A database error is logged once per outage (and its end once), not raised, and so is any other
error (with its traceback): the thread goes on to its next turn. Its connections are closed when
it ends.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable


class Periodic:
    """Calls ``task`` every ``every`` seconds (``first`` before the first) from a daemon thread."""

    def __init__(
        self,
        task: Callable[[], object],
        *,
        every: float,
        name: str,
        what: str,
        logger: logging.Logger,
        first: Callable[[], object] | None = None,
    ) -> None:
        self.task, self.every, self.name, self.what, self.logger, self.first = task, every, name, what, logger, first
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failing = False

    @property
    def running(self) -> bool:
        return self._thread is not None

    def start(self) -> None:
        # An event per thread: a thread that outlived its stop's wait still ends at its next turn.
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(self._stop,), name=self.name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)  # at most one task (bounded by the connect timeout) to finish
            self._thread = None

    def run_once(self) -> None:
        """Do the task now, in this thread; a database error is logged (once per outage), never raised."""
        self.quietly(self.task, self.what)

    def quietly(self, task: Callable[[], object], what: str) -> None:
        """Do ``task``; an error is logged (once until it succeeds again), never raised."""
        from django.db import DatabaseError, close_old_connections, connection

        if not connection.in_atomic_block:  # (a caller's transaction, in tests, is not ours to end)
            close_old_connections()  # as between two requests: drop a connection that is broken or too old
        try:
            task()
        except DatabaseError as exc:
            if not self._failing:
                self.logger.warning("could not %s: %s", what, exc)
            self._failing = True
            return
        except Exception:  # a bug, or a value it cannot handle: the thread must live on all the same
            if not self._failing:
                self.logger.exception("could not %s", what)
            self._failing = True
            return
        if self._failing:
            self.logger.info("could %s again", what)
        self._failing = False

    def _run(self, stop: threading.Event) -> None:
        from django.db import connections

        try:
            if self.first is not None:
                self.quietly(self.first, f"prepare to {self.what}")
            while not stop.is_set():
                self.run_once()
                if stop.wait(self.every):
                    return
        finally:
            connections.close_all()  # this thread's connections only
