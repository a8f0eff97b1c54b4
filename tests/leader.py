"""The leader lock between tests: free before the next test's beat asks for it."""

from __future__ import annotations

import time

import psycopg
from django.db import connection


def wait_until_the_leader_lock_is_free(seconds: float = 10) -> None:
    """Return once a new session can take beat's leader lock (at most ``seconds``). A beat that
    stops closes its connection; the server frees that session's lock only once its process for
    it has ended, which a loaded machine may take a while to do, and a beat asking meanwhile is
    refused (in production it asks again at its next tick)."""
    if connection.vendor != "postgresql":
        return
    from scheduling.leader import LOCK_KEY, _conninfo

    with psycopg.connect(**_conninfo(), autocommit=True) as probe:
        deadline = time.monotonic() + seconds
        while True:
            row = probe.execute("SELECT pg_try_advisory_lock(%s)", [LOCK_KEY]).fetchone()
            if row and row[0]:
                probe.execute("SELECT pg_advisory_unlock(%s)", [LOCK_KEY])
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"beat's leader lock is still held after {seconds} s")
            time.sleep(0.01)
