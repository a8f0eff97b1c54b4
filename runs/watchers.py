"""Who is told that a run ended: code above ``runs`` (alerts) asks here, when the apps start, to
be told of every run that ends, and ``runs`` tells it without knowing who it is.

A watcher is called in the transaction that ends the run (``runs.outcomes.record`` for a run
that finished or was lost, ``runs.claims`` for a fire skipped as it was claimed), so what it
writes (an incident, a notification to send) is committed with the outcome or not at all. A run
that no such watcher wants (``watched``) may be ended by one statement in no transaction
(``runs.outcomes``): only the watchers that never write are told of it, after that statement. A
watcher runs in a savepoint of its own: a watcher that fails is logged and undone, and the run's
outcome is stored all the same. It must queue work for after the commit, never do it.

A watcher that never touches the database (``monitoring.metrics``: it only queues a count for
after the commit) asks for no savepoint (``savepoint=False``), which saves two statements on
every run: it has no writes to undo, and one that fails is only logged.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from django.db import connection, transaction

from core.outage import DATABASE_DISCONNECTS, describe

if TYPE_CHECKING:
    from jobs.models import Job
    from runs.models import Run

logger = logging.getLogger(__name__)

# A watcher is given the run as it ended, its job, and whether this was the fire's last attempt
# (False when a retry of it has been queued).
RunWatcher = Callable[["Run", "Job", bool], None]

# Whether a watcher wants to hear of a run of this job: a check that makes no query, so that a run
# no watcher cares about costs no savepoint either (two statements on every run otherwise).
WantsJob = Callable[[str], bool]

_watchers: list[tuple[RunWatcher, WantsJob | None]] = []
# Those that asked for no savepoint: told first, as they are.
_watchers_without_savepoint: list[RunWatcher] = []


def watch_runs(watcher: RunWatcher, *, wants: WantsJob | None = None, savepoint: bool = True) -> None:
    """Tell ``watcher`` of every run that ends from now on in this process (once, however often
    asked), or of those whose job ``wants`` says it wants to hear of. ``savepoint=False`` only for
    a watcher that never touches the database (see above); it is told of every run."""
    if not savepoint:
        if watcher not in _watchers_without_savepoint:
            _watchers_without_savepoint.append(watcher)
    elif all(registered is not watcher for registered, _ in _watchers):
        _watchers.append((watcher, wants))


def watched(job_id: str) -> bool:
    """Whether a watcher that may write (one with a savepoint) wants to hear of a run of this job:
    if none does, its end writes nothing of theirs (``runs.outcomes`` then ends it with one
    statement and no transaction of its own). The check ``run_ended`` makes (the alert rules'
    from their cache, read again when it is old)."""
    return any(wants is None or wants(job_id) for _, wants in _watchers)


def run_ended(run: Run, job: Job, *, final: bool, writers: bool = True) -> None:
    """Tell the watchers that ``run`` ended. Call in the transaction that ended it; or, with
    ``writers`` False (only the watchers that never write), after the one statement that ended
    a run no other watcher wants (``watched``)."""
    for plain in _watchers_without_savepoint:
        try:
            plain(run, job, final)
        except Exception:  # it wrote nothing, so nothing is undone: the run goes on
            logger.exception("a watcher of run %s failed (the run's outcome is stored all the same)", run.pk)
    if not writers:
        return
    for watcher, wants in _watchers:
        try:
            if wants is not None and not wants(job.pk):
                continue
            with transaction.atomic():
                watcher(run, job, final)
        except Exception as exc:  # a watcher never fails the run it watches …
            if isinstance(exc, DATABASE_DISCONNECTS) and not _connection_usable():
                raise  # … unless the connection is gone: the outcome cannot be stored either (runs.outcomes retries)
            logger.exception(
                "a watcher of run %s failed (the run's outcome is stored all the same): %s", run.pk, describe(exc)
            )


def _connection_usable() -> bool:
    """Whether the run's transaction can go on after a watcher's database error: its savepoint was
    rolled back (a deadlock, a lock timeout: the watcher's writes are undone, the run's kept), and
    the connection still answers."""
    return not connection.needs_rollback and connection.is_usable()
