"""How a run ended: its outcome stored on the run, folded into the job's counters, a retry queued.

A run is finished by a conditional update: only a run still ``running`` (or claimed ahead and
still ``queued``) takes its outcome, so a run the reaper marked ``lost`` (``runs.reaper``) stays
lost and is counted once.

The database may go away under a worker. The outcome is stored again on a new connection for a
bounded time (``core.outage.retrying``, until the reaper's deadline is near): a call that was
made is recorded as it ended, never as failed or lost because its outcome could not be written
at first, and a retry is queued only when the call itself failed.

The job's secret values are masked wherever an outcome quotes them, once, here: the API, the
admin, the Weizhi paths and the logs then only ever see masked text.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from contextlib import nullcontext
from datetime import datetime
from functools import partial
from typing import Any

from django.conf import settings
from django.db import DatabaseError, OperationalError, connection, transaction
from django.db.models import F, Field, TextField, Value
from django.db.models.functions import Concat
from django.utils import timezone
from django.utils.translation import gettext as _

from core.outage import DATABASE_DISCONNECTS, describe, retrying
from jobs.models import Job
from jobs.secrets import mask_json_values, mask_message, mask_values, secret_values
from runs import policies
from runs.accounting import (
    job_complete_if_fired,
    job_record_run,
    record_run_params,
    record_run_statement,
    record_run_without_dependents,
)
from runs.dependencies import fire_downstream
from runs.enqueue import queue_retry
from runs.executors.base import Outcome, json_safe, storable_text
from runs.models import Run
from runs.watchers import run_ended, watched

logger = logging.getLogger(__name__)


def finish(run: Run, outcome: Outcome, *, job: Job, finished: datetime | None = None) -> Run:
    """Store the outcome on the run, fold it into the job's counters, and queue a retry if due.

    Only a run still ``running`` is finished. If the reaper marked it ``lost`` meanwhile (the
    worker was too slow to be believed alive), ``lost`` stands: it has been counted and may
    have a retry queued already, so the late outcome is only logged and noted on the run.

    A lost database connection does not change the outcome: it is stored again on a new one
    until the reaper's deadline for the run is near (``policies.store_window``); past that the
    error is raised and the run, still ``running``, is the reaper's. An outcome the database
    refuses as it is (a value it cannot hold) is recorded ``failed`` with the reason, so the run
    never stays ``running``, and is not retried: its call was made.
    """
    finished = finished or timezone.now()
    secrets = secret_values(job, run.overrides)
    started = run.started_at or finished  # set when it was claimed; a run ends only after that
    fields: dict[str, Any] = {
        "status": outcome.status,
        "started_at": started,
        "finished_at": finished,
        "duration_ms": elapsed_ms(started, finished),
        "status_code": outcome.status_code,
        "response_body": storable_text(mask_values(outcome.response_body, secrets)),
        "result": mask_json_values(json_safe(outcome.result), secrets),
        "exit_code": outcome.exit_code,
        "output": storable_text(mask_values(outcome.output, secrets)),
        "error": masked(outcome.error, secrets),
        "traceback": masked(outcome.traceback, secrets),
        "log_output": storable_text(mask_values(run.log_output, secrets)),
    }
    what = f"storing the outcome of run {run.pk}"
    try:
        ended = retrying(partial(_store_outcome, run, fields, job=job), within=_store_window(run, job), what=what)
    except DATABASE_DISCONNECTS:
        raise
    except DatabaseError as exc:
        # Only the first line: PostgreSQL's detail quotes the row, secrets and all.
        problem = masked(describe(exc), secrets)
        logger.error("could not store the outcome of run %s (%s): %s", run.pk, outcome.status, problem)
        fields = {
            "status": Run.Status.FAILED,
            "started_at": run.started_at,
            "finished_at": finished,
            "duration_ms": fields["duration_ms"],
            "error": _("The run ended %(status)s, but its outcome could not be stored (%(problem)s).")
            % {"status": outcome.status, "problem": problem},
        }
        store = partial(_store_outcome, run, fields, job=job, retry=False)
        ended = retrying(store, within=_store_window(run, job), what=what)
        run.refresh_from_db()
    if not ended:
        _late_outcome(run, outcome, finished)
        run.refresh_from_db()
        return run
    logger.info(
        "run finished run_id=%s job_id=%s status=%s duration_ms=%s", run.pk, run.job_id, run.status, run.duration_ms,
        extra={"run_id": run.pk, "job_id": run.job_id, "status": run.status, "duration_ms": run.duration_ms},
    )  # fmt: skip
    return run


def _store_window(run: Run, job: Job) -> float:
    """Seconds left now to store ``run``'s outcome before the reaper may take it for lost."""
    return policies.store_window(
        run.started_at,
        now=timezone.now(),
        timeout_seconds=job.timeout_seconds,
        grace_seconds=settings.CRONTASK_LOST_GRACE_SECONDS,
    )


def _store_outcome(run: Run, fields: dict[str, Any], *, job: Job, retry: bool = True) -> bool:
    """End the run with ``fields`` if it is still running (or still ``queued``: claimed ahead, its
    start could not be stored), and record it; False if someone else ended it (the reaper).

    Safe to run again after a lost connection: if the first commit did happen, the run already
    holds this very outcome, and that counts as stored (once).

    Most runs need nothing but their ending statement (``_alone``): that statement is then the
    whole of it, in no transaction of its own (one statement is atomic by itself; a savepoint
    within a caller's transaction), which spares the BEGIN and COMMIT (about 0.23 ms of the
    machine's CPU a run, a twentieth of it). Should it not end the run (its job turns out to have
    dependents, or the run was ended already), the run goes the whole way below."""
    if _alone(run, fields, job=job, retry=retry):
        # Within a caller's transaction, a savepoint: a statement refused would abort it.
        with transaction.atomic() if connection.in_atomic_block else nullcontext():
            ended, _ = _end_going(run.pk, fields, job_id=job.pk, alone=True)
        if ended:
            for name, value in fields.items():
                setattr(run, name, value)
            run_ended(run, job, final=True, writers=False)  # all record() has left to do (see _alone)
            return True
    with transaction.atomic():
        ended, dependents = _end_going(run.pk, fields, job_id=job.pk)
        if not ended:
            stored = Run.objects.filter(pk=run.pk, status=fields["status"], finished_at=fields["finished_at"])
            if not stored.exists():
                return False
            mine = True  # this very outcome, stored by an attempt whose answer was lost
        else:
            mine = False
        for name, value in fields.items():
            setattr(run, name, value)
        if not mine:
            record(run, job, retry=retry, dependents=dependents)
        if connection.needs_rollback:
            # A step of record() met a database error and went on (a watcher's read, undone by its
            # savepoint; with the connection gone, the savepoint could not be): leaving the block
            # would roll the outcome back without a word, and the run would stay running until the
            # reaper called it lost. Raised, it is stored again on a new connection.
            raise OperationalError("the outcome's transaction cannot commit: a step inside it failed")
    return True


def _alone(run: Run, fields: dict[str, Any], *, job: Job, retry: bool) -> bool:
    """Whether ending ``run`` with ``fields`` is all its outcome takes, known before it is stored:
    on PostgreSQL (the ending statement keeps the job's counters too), no retry due, not a
    one-off's own fire (which completes its job), and no watcher that writes wants its job
    (``runs.watchers.watched``). Whether the job has dependents (whose runs the end fires) is
    not known yet: the statement then does not end the run (see ``_end_going``)."""
    if connection.vendor != "postgresql":
        return False
    if retry and policies.should_retry(status=fields["status"], attempt=run.attempt, max_retries=job.max_retries):
        return False
    if _completes_one_off(run, job):
        return False
    try:
        return not watched(job.pk)
    except Exception:  # noqa: BLE001 - a watcher's own check failed: the whole way, where run_ended handles it
        return False


def _completes_one_off(run: Run, job: Job) -> bool:
    """Whether ``run``'s end completes its job: a one-off's own fire (or its retry), not a run by
    hand or by an upstream job."""
    return run.trigger not in (Run.Trigger.MANUAL, Run.Trigger.DEPENDENCY) and job.trigger == Job.Trigger.DATE


def _end_going(pk: int, fields: dict[str, Any], *, job_id: str, alone: bool = False) -> tuple[int, bool | None]:
    """``Run.objects.filter(pk=pk, status__in=(running, queued)).update(**fields)``, written out:
    every run ends here, and the ORM took about as long to build that UPDATE as the database
    to run it. Each value is prepared by its field as the ORM's UPDATE prepares it
    (``get_db_prep_save``; None is NULL). Returns the rows updated (0 or 1), and whether any job
    runs after this one, or None where that is left to ``record``.

    On PostgreSQL the same statement folds the run into its job's counters if it ended it
    (``runs.accounting.record_run_statement``, a second data-modifying WITH query): one statement
    where there were two, in the same transaction, in the same order (the run's row, then the
    job's), so ``record`` is told whether any job runs after this one instead of asking.

    ``alone`` (PostgreSQL; ``_store_outcome`` with nothing else to do): the run is not ended if
    any job runs after its job (ended 0), since firing those must be in the same transaction."""
    names = tuple(fields)
    columns = [_concrete(name) for name in names]
    if any(hasattr(field, "get_placeholder") for field in columns):  # none of the run's fields: for safety
        if alone:
            return 0, None  # the ORM's UPDATE has no room for the condition: the whole way
        updated = Run.objects.filter(pk=pk, status__in=(Run.Status.RUNNING, Run.Status.QUEUED)).update(**fields)
        return updated, None
    together = connection.vendor == "postgresql"
    key = (connection.vendor, names, alone)
    sql = _ENDING.get(key)
    if sql is None:
        quote = connection.ops.quote_name
        sets = ", ".join(f"{quote(str(field.column))} = %(end_{n})s" for n, field in enumerate(columns))
        table, id_column, status = quote(Run._meta.db_table), quote("id"), quote("status")
        # Only the model's own names: the values are parameters.
        where = f"{id_column} = %(end_id)s AND {status} IN (%(end_going)s, %(end_queued)s)"
        if alone:
            where += f" AND {record_run_without_dependents()}"
        ending = f"UPDATE {table} SET {sets} WHERE {where}"  # noqa: S608
        if together:
            counting = record_run_statement(only_if="EXISTS (SELECT 1 FROM ended)")
            ending = (
                f"WITH ended AS ({ending} RETURNING 1), counted AS ({counting}) "  # noqa: S608 (the same)
                "SELECT (SELECT count(*) FROM ended), (SELECT * FROM counted)"
            )
        sql = _ENDING[key] = ending
    params = {
        f"end_{n}": field.get_db_prep_save(fields[name], connection)
        for n, (name, field) in enumerate(zip(names, columns, strict=True))
    }
    params |= {"end_id": pk, "end_going": Run.Status.RUNNING.value, "end_queued": Run.Status.QUEUED.value}
    if together:
        # What record() reads once the fields are on the run (finish() always gives started_at).
        started = fields.get("started_at") or fields.get("finished_at") or timezone.now()
        params |= record_run_params(job_id, fields["status"], started)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        if not together:
            return cursor.rowcount, None
        ended, dependents = cursor.fetchone()  # dependents: NULL if the run was not ended, or its job is gone
    if not ended:
        return 0, None
    return ended, dependents is None or bool(dependents)  # a job gone: True, as job_record_run says


_ENDING: dict[tuple[str, tuple[str, ...], bool], str] = {}


def _concrete(name: str) -> Field:
    field = Run._meta.get_field(name)
    if not isinstance(field, Field) or not field.column:  # a run's own column, never a relation's other side
        raise TypeError(f"not a column of runs: {name}")
    return field


def _late_outcome(run: Run, outcome: Outcome, finished: datetime) -> None:
    """The run was ended by someone else (the reaper) before its outcome came: keep theirs."""
    seconds = (finished - (run.started_at or finished)).total_seconds()
    logger.warning(
        "late outcome ignored run_id=%s job_id=%s outcome=%s after %.1f s: the run was already ended",
        run.pk, run.job_id, outcome.status, seconds,
        extra={"run_id": run.pk, "job_id": run.job_id, "status": outcome.status},
    )  # fmt: skip
    note = " " + _("It did end later (%(status)s, after %(seconds)s s); that outcome was not recorded.") % {
        "status": outcome.status,
        "seconds": f"{seconds:.1f}",
    }
    Run.objects.filter(pk=run.pk, status=Run.Status.LOST).update(
        error=Concat(F("error"), Value(note), output_field=TextField())
    )


def masked(text: str, secrets: Sequence[str]) -> str:
    """A message (an error, a traceback), masked (``jobs.secrets.mask_message``) and cut to fit."""
    return storable_text(mask_message(text, secrets))


def record(run: Run, job: Job, *, retry: bool = True, dependents: bool | None = None) -> None:
    """Counters, one-off completion, the retry chain (unless ``retry`` is False: the call was
    made) or, on the final attempt, the downstream jobs fired (``runs.dependencies``), and the run's
    watchers told (``runs.watchers``: alerts). Call in the transaction that ended the run.
    ``dependents`` given: the counters were kept by the statement that ended the run
    (``_end_going``), which said whether any job runs after this one."""
    if dependents is None:
        dependents = job_record_run(
            job_id=job.pk, status=run.status, started_at=run.started_at or run.finished_at or timezone.now()
        )
    if _completes_one_off(run, job):
        job_complete_if_fired(job_id=job.pk)
    retried = retry and policies.should_retry(status=run.status, attempt=run.attempt, max_retries=job.max_retries)
    if retried:
        queue_retry(run, job)
    elif dependents:  # the fire's final attempt: the jobs that run after this one (runs.dependencies)
        fire_downstream(run, job)
    run_ended(run, job, final=not retried)


def elapsed_ms(start: datetime, end: datetime) -> int:
    """Milliseconds from ``start`` to ``end``, never negative."""
    return max(0, int((end - start).total_seconds() * 1000))
