"""Prepared statements (``DATABASE_PREPARED_STATEMENTS``) and a schema that changes under them.

A statement PostgreSQL has prepared keeps the shape of its result: once a migration changes the
type of a column it returns (a varchar's length is enough), each execution of it on that
connection fails with "cached plan must not change result type" (SQLSTATE 0A000), and psycopg
does not prepare it again. Processes of the release before keep running while ``migrate`` runs,
so each of their connections would fail so for as long as it lives (``CONN_MAX_AGE``).

``renew_after_schema_change``, an execute wrapper on every PostgreSQL connection that binds its
values on the server (``watch_prepared_statements``, on ``connection_created``), takes that error
for what it is, a connection that has to be renewed: it marks the connection to be closed when
its request, task or pass ends (``close_old_connections``, which every process calls between
two), and raises an ``OperationalError``, as a lost connection does. So what is done about a
lost connection is done: a worker stores a run's outcome again on a new connection
(``core.outage.retrying``), a request gets a 503 with Retry-After
(``core.middleware.DatabaseUnavailableMiddleware``), beat waits and reads again. The new
connection prepares its statements anew.

It never prepares a statement with more than ``PREPARED_AT_MOST_VALUES`` values: one that long
looks up or writes a batch (``id IN (…)`` of 1,000 ids, a multi-row insert), and repeats only
in the loop that grows the table it reads. Prepared, PostgreSQL soon runs it on a generic plan,
made once for the table as it was then and kept until the table is analysed; in a generic plan
the values of ``IN (…)`` are not known, so they cannot be hashed ahead, and a sequential scan
compares every row with each of them. Made on an import's first batches (a small table), the
check of each batch's 1,000 ids stayed such a scan as the table grew: 1.8 s a batch at 100,000
jobs, against 20 ms planned with the values; the import of 100,000 jobs took 249 s instead of
64 (72 with nothing prepared). Planned each time it is sent, such a statement fits the table as
it is. No single-row statement is that long (a job has 46 columns).

It also refuses a statement with more values than the protocol can bind (65,535), which values
written into the statement (client-side binding) never met: libpq would refuse it with an
``OperationalError`` that the same code would take for a lost connection and send again.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from django.db import NotSupportedError, OperationalError, ProgrammingError
from django.db.backends.base.base import BaseDatabaseWrapper

CHANGED_RESULT = "cached plan must not change result type"
# Where PostgreSQL raises it (the diagnostic's function, which is not translated as the message is).
CHANGED_RESULT_SOURCE = "RevalidateCachedQuery"
#: Values one statement can carry apart from it (the protocol counts them in 16 bits).
MAX_BOUND_VALUES = 65535
#: Statements with more values than this (a batch's) are planned each time, never prepared.
PREPARED_AT_MOST_VALUES = 100


def watch_prepared_statements(sender: Any, connection: BaseDatabaseWrapper, **kwargs: Any) -> None:
    """``connection_created``'s receiver: the wrapper on a PostgreSQL connection that binds its
    values on the server (``DATABASE_PREPARED_STATEMENTS``), once."""
    if (
        connection.vendor == "postgresql"
        and connection.settings_dict["OPTIONS"].get("server_side_binding") is True
        and renew_after_schema_change not in connection.execute_wrappers
    ):
        connection.execute_wrappers.insert(0, renew_after_schema_change)


def renew_after_schema_change(
    execute: Callable[..., Any], sql: str, params: Any, many: bool, context: dict[str, Any]
) -> Any:
    values = len(params) if not many and params is not None else 0
    # Refused here, as the error it is: libpq refuses it before sending, with an OperationalError
    # that would be taken for a lost connection and tried again.
    if values > MAX_BOUND_VALUES:
        raise ProgrammingError(f"{values} values in one statement: at most {MAX_BOUND_VALUES} can be bound")
    try:
        if values > PREPARED_AT_MOST_VALUES:
            return _unprepared(execute, sql, params, many, context)
        return execute(sql, params, many, context)
    except NotSupportedError as error:
        if _changed_result(error.__cause__):
            context["connection"].close_at = time.monotonic()  # closed by the next close_old_connections
            raise OperationalError(f"{error} (a migration changed a table: the connection is renewed)") from error
        raise


def _unprepared(execute: Callable[..., Any], sql: str, params: Any, many: bool, context: dict[str, Any]) -> Any:
    """``execute``, with psycopg neither preparing the statement nor counting it towards that."""
    raw = context["cursor"].cursor.connection  # the psycopg connection it runs on, one thread's
    threshold = raw.prepare_threshold
    try:
        raw.prepare_threshold = None
        return execute(sql, params, many, context)
    finally:
        raw.prepare_threshold = threshold


def _changed_result(error: BaseException | None) -> bool:
    if getattr(error, "sqlstate", None) != "0A000":
        return False
    diag = getattr(error, "diag", None)
    return getattr(diag, "source_function", None) == CHANGED_RESULT_SOURCE or CHANGED_RESULT in str(error)
