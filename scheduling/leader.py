"""Which beat fires jobs: the holder of a PostgreSQL advisory lock.

Two beats (two deployments overlapping, a second one started by mistake) would still make one run
per fire, since fires are claimed by a conditional update; the lock makes the second beat idle
instead of racing. It is a session lock on a connection of its own, so it lives exactly as long
as the leader's process: if the leader dies, even by SIGKILL, the server drops the session and a
standby takes over at its next tick (about a second). On SQLite (one machine) there is no lock.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

import psycopg
from django.db import connection
from psycopg.rows import TupleRow

logger = logging.getLogger(__name__)

LOCK_KEY = 0x63726F6E7461736B & 0x7FFFFFFFFFFFFFFF  # "crontask"


class LeaderLock:
    def __init__(self) -> None:
        self._conn: psycopg.Connection[TupleRow] | None = None
        self.is_leader = False

    @property
    def needed(self) -> bool:
        return connection.vendor == "postgresql"

    def hold(self) -> bool:
        """True while this process holds the lock; tries to take it when it does not."""
        if not self.needed:
            return True
        try:
            if self._conn is None or self._conn.closed:
                self._conn = psycopg.connect(**_conninfo(), autocommit=True)
                self.is_leader = False
            if self.is_leader:
                self._conn.execute("SELECT 1")  # the session (and so the lock) is still there
            else:
                row = self._conn.execute("SELECT pg_try_advisory_lock(%s)", [LOCK_KEY]).fetchone()
                self.is_leader = bool(row and row[0])
                if self.is_leader:
                    logger.info("this beat is now the leader: it fires the jobs")
        except psycopg.Error as exc:
            # Logged once, when the lock is lost: while the database stays down, every tick fails here.
            if self.is_leader:
                logger.error("lost the leader lock's connection (%s); standing by until it is back", exc)
            else:
                logger.debug("cannot take the leader lock: %s", exc)
            self.release()
        return self.is_leader

    def release(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(psycopg.Error):
                self._conn.close()
        self._conn = None
        self.is_leader = False


def _conninfo() -> dict[str, Any]:
    params = connection.get_connection_params()
    params.pop("cursor_factory", None)
    params.pop("context", None)
    params.pop("prepare_threshold", None)
    params.pop("server_side_binding", None)
    params.setdefault("connect_timeout", 5)  # a database host that does not answer must not hold beat
    return params
