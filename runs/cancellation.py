"""Cancelling runs: by a user (``run_cancel``: the API, the admin), or by a job's ``replace``
policy (``runs.claims``, through ``cancel_runs``).

A ``queued`` run is cancelled at once: a conditional update, so the worker that would claim it
(its message already on the queue, or the run held ahead of its time) finds it cancelled and
never starts it. A ``running`` run is asked to stop (``cancelled_at`` set while it still runs):
the worker executing it hears of it within ``CancelWatch.POLL_SECONDS`` (one query per worker
process, whatever the number of runs it executes), sends a python or shell run's process group
SIGTERM and, after CRONTASK_CANCEL_GRACE_SECONDS, SIGKILL, or closes an HTTP call's connection,
and stores the run ``cancelled``. A cancelled run is never retried. If its worker is gone, the
reaper ends it (``runs.reaper``).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import DatabaseError, transaction
from django.utils import timezone, translation
from django.utils.functional import Promise
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from audit.services import audit_record
from core.exceptions import Conflict
from runs.accounting import job_record_run
from runs.models import Run
from runs.watchers import run_ended

if TYPE_CHECKING:
    from jobs.preparation import Actor

logger = logging.getLogger(__name__)

REPLACED_BY = gettext_lazy("the job's 'replace' policy (a newer run started)")


def run_cancel(*, run: Run, actor: Actor = None) -> Run:
    """Cancel ``run``: a queued one now, a running one by asking its worker (it ends within the
    cancel grace). Asking again changes nothing. Conflict (409) if it has ended."""
    with transaction.atomic():
        locked = Run.objects.select_for_update().get(pk=run.pk)
        if locked.status in Run.FINISHED:
            message = _("Run %(run)s has ended (%(status)s): there is nothing to cancel.")
            raise Conflict(message % {"run": locked.pk, "status": locked.status}, field="status")
        if locked.cancelled_at is None:
            with translation.override(settings.LANGUAGE_CODE):  # stored: the deployment's language
                by = _who(actor)
            cancel_runs([locked.pk], by=by)
            audit_record(action="cancel", job_id=locked.job_id, run_id=locked.pk)
    return Run.objects.get(pk=run.pk)


def cancel_runs(ids: Iterable[int], *, by: str | Promise, now: datetime | None = None) -> None:
    """Cancel the runs ``ids`` that have not ended: the queued ones now, the running ones by asking
    their workers. Call in a transaction (the claim's, for ``replace``)."""
    now = now or timezone.now()
    # What is stored on the runs is in the deployment's language, whoever asked (a request speaks
    # its reader's): the same as the errors a worker writes.
    with translation.override(settings.LANGUAGE_CODE):
        by = str(by)
        cancelled_error = _("Cancelled by %(by)s before it started.") % {"by": by}
    ids = list(ids)
    for run in Run.objects.filter(pk__in=ids, status=Run.Status.QUEUED).select_related("job"):
        fields = {
            "status": Run.Status.CANCELLED,
            "finished_at": now,
            "cancelled_at": now,
            "cancelled_by": by,
            "error": cancelled_error,
        }
        if not Run.objects.filter(pk=run.pk, status=Run.Status.QUEUED).update(**fields):
            continue  # started meanwhile: asked below, as a running run
        for name, value in fields.items():
            setattr(run, name, value)
        # Never ran: in the job's last run, not counted (as a skipped fire), and told to the watchers.
        job_record_run(job_id=run.job_id, status=run.status, started_at=now, counted=False)
        with translation.override(settings.LANGUAGE_CODE):  # what the alerts store, as a worker would
            run_ended(run, run.job, final=True)
        logger.info("run cancelled run_id=%s job_id=%s by=%s (queued)", run.pk, run.job_id, by)
    asked = Run.objects.filter(pk__in=ids, status=Run.Status.RUNNING, cancelled_at__isnull=True)
    for pk, job_id in asked.values_list("pk", "job_id"):
        logger.info("run cancel asked run_id=%s job_id=%s by=%s", pk, job_id, by)
    asked.update(cancelled_at=now, cancelled_by=by)


def _who(actor: Actor) -> str:
    if actor is not None and getattr(actor, "is_authenticated", False):
        return actor.get_username()
    return _("an anonymous caller")


class CancelWatch:
    """The runs this process executes, and what to do when one is cancelled: one thread asks the
    database every POLL_SECONDS which of them are, while there are any (one query per process),
    and ends when there are none."""

    POLL_SECONDS = 0.25

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._watched: dict[int, Callable[[], None]] = {}
        self._thread: threading.Thread | None = None
        self._failing = False

    @contextmanager
    def watching(self, run_id: int, on_cancel: Callable[[], None]) -> Iterator[None]:
        """``on_cancel`` is called (once, from the watch's thread) if ``run_id`` is cancelled meanwhile."""
        with self._lock:
            self._watched[run_id] = on_cancel
            if self._thread is None or not self._thread.is_alive():  # (a thread left from before a fork is not)
                self._thread = threading.Thread(target=self._run, name="crontask-cancel-watch", daemon=True)
                self._thread.start()
        try:
            yield
        finally:
            with self._lock:
                self._watched.pop(run_id, None)

    def _run(self) -> None:
        from django.db import close_old_connections, connections

        try:
            while True:
                time.sleep(self.POLL_SECONDS)
                with self._lock:
                    ids = list(self._watched)
                    if not ids:  # nothing to watch: the thread ends (and its connection is closed)
                        self._thread = None
                        return
                close_old_connections()
                try:
                    asked = set(Run.objects.filter(pk__in=ids, cancelled_at__isnull=False).values_list("pk", flat=True))
                except DatabaseError as exc:
                    if not self._failing:
                        logger.warning("could not look for cancelled runs: %s", exc)
                    self._failing = True
                    continue
                self._failing = False
                for pk in asked:
                    with self._lock:
                        on_cancel = self._watched.pop(pk, None)
                    if on_cancel is None:
                        continue
                    try:
                        on_cancel()
                    except Exception:  # the other runs it watches must still hear of theirs
                        logger.exception("could not stop cancelled run %s", pk)
        finally:
            connections.close_all()  # this thread's own


_watch: CancelWatch | None = None
_watch_lock = threading.Lock()


def _forget_watch() -> None:
    """In a forked child: the parent's watch (its lock, its thread) is not this process's."""
    global _watch, _watch_lock
    _watch, _watch_lock = None, threading.Lock()


os.register_at_fork(after_in_child=_forget_watch)


def cancel_watch() -> CancelWatch:
    """This process's watch (made at first use: in a worker's pool process, after the fork)."""
    global _watch
    with _watch_lock:
        if _watch is None:
            _watch = CancelWatch()
        return _watch
