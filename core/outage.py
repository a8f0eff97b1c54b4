"""Living through outages of the database and the broker: bounded retries, quiet logs.

``Outage`` follows one dependency as a long-lived process (beat) sees it: the first failure is
logged as an error, the following ones only at debug level, and the recovery once with how
long it lasted, so a 10-minute outage is two log lines, not one per tick. It also spaces the
attempts out (``due``), doubling the wait up to ``max_delay``, so that the process resumes
within that long of the dependency's return.

``retrying`` runs a database step again after a connection error (the server restarted, the
connection was terminated, a failover), opening a new connection each time, for a bounded
time. A worker uses it for the claim and the outcome of a run: a call that was made must not
be recorded as failed, nor made again, because the database hiccupped.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from typing import TypeVar

from django.db import DatabaseError, InterfaceError, OperationalError, connection

logger = logging.getLogger(__name__)
T = TypeVar("T")

#: What a lost or refused database connection raises (a deadlock or serialisation failure too,
#: which are worth another try for the same reason).
DATABASE_DISCONNECTS = (OperationalError, InterfaceError)


class Outage:
    """The state of one dependency (``name``) as seen by a long-lived process."""

    def __init__(self, name: str, *, log: logging.Logger, first_delay: float = 0.5, max_delay: float = 5.0) -> None:
        self.name = name
        self.log = log
        self.first_delay = first_delay
        self.max_delay = max_delay
        self.down_since: float | None = None  # monotonic
        self.failures = 0
        self.delay = first_delay
        self.next_attempt = 0.0
        self.recovered_at: float | None = None  # wall clock (time.time()) of the last recovery

    @property
    def down(self) -> bool:
        return self.down_since is not None

    def due(self) -> bool:
        """Whether to try the dependency now (always while it is up; spaced out while it is down)."""
        return self.down_since is None or time.monotonic() >= self.next_attempt

    def failed(self, exc: BaseException, *, consequence: str = "") -> None:
        now = time.monotonic()
        self.failures += 1
        if self.down_since is None:
            self.down_since = now
            self.delay = self.first_delay
            self.log.error("%s unreachable: %s%s", self.name, describe(exc), f"; {consequence}" if consequence else "")
        else:
            self.log.debug("%s still unreachable (attempt %d): %s", self.name, self.failures, describe(exc))
            self.delay = min(self.delay * 2, self.max_delay)
        self.next_attempt = now + self.delay

    def ok(self) -> bool:
        """Record a success; True if it ends an outage."""
        if self.down_since is None:
            return False
        lasted = time.monotonic() - self.down_since
        self.log.warning("%s is back after %.1f s (%d failed attempts)", self.name, lasted, self.failures)
        self.down_since = None
        self.failures = 0
        self.recovered_at = time.time()
        return True


def describe(exc: BaseException) -> str:
    """``Type: first line of the message`` (a database error's detail may quote row data)."""
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0][:300]}" if lines else type(exc).__name__


def retrying(step: Callable[[], T], *, within: float, what: str) -> T:
    """``step()``, run again after a lost database connection until it succeeds or ``within``
    seconds have passed (then the last error is raised). Never inside an outer transaction,
    which the lost connection has ended: there the error is raised at once.

    ``step`` must be safe to run again: its transaction either committed or did not, and a
    step whose commit was lost in transit must recognise its own earlier write.
    """
    deadline = time.monotonic() + within
    delay = 0.1
    failures = 0
    while True:
        try:
            result = step()
        except DATABASE_DISCONNECTS as exc:
            left = deadline - time.monotonic()
            if connection.in_atomic_block or left <= 0:
                raise
            failures += 1
            if failures == 1:
                logger.warning("database error while %s; retrying for up to %.0f s: %s", what, within, describe(exc))
            _drop_connection()
            time.sleep(min(delay, left))
            delay = min(delay * 2, 2.0)
            continue
        if failures:
            logger.info("%s succeeded after %d database error(s)", what, failures)
        return result


def _drop_connection() -> None:
    """Close this thread's database connection, so the next query opens a new one."""
    with contextlib.suppress(DatabaseError):
        connection.close()
