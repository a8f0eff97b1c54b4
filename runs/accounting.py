"""A finished run's mark on its job: the counters and last run (one UPDATE), a one-off completed;
and a fire no scheduler recorded, in the job's ``last_fired_at``.

Runs write these columns of the job table; jobs.services never does (it sits below runs).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from django.db import connection
from django.db.models import Q
from django_celery_beat.models import PeriodicTask, PeriodicTasks

from jobs.models import Job
from runs.models import Run


def job_record_run(*, job_id: str, status: str, started_at: datetime, counted: bool = True) -> bool:
    """Fold a finished run into the job's counters with one atomic UPDATE (exact under concurrency):
    a run, and a success or a failure (a cancelled run is neither). Returns whether any job runs
    after this one (``JobDependency``), read by the same statement, so that a run whose job has
    none (nearly all) asks nothing more for ``runs.dependencies`` (True if the job is gone).

    ``last_run_at`` and ``last_run_status`` move only forward: a run that started before the
    one already recorded does not replace it. Every run ends here, so the statement is written
    out rather than built by the ORM each time, which cost most of a millisecond per run.
    ``runs.outcomes`` sends the same UPDATE inside the statement that ends the run, on PostgreSQL
    (``record_run_statement``).
    """
    with connection.cursor() as cursor:
        cursor.execute(_RECORD_RUN_ALONE, record_run_params(job_id, status, started_at, counted=counted))
        row = cursor.fetchone()
    return row is None or bool(row[0])


def record_run_params(job_id: str, status: str, started_at: datetime, *, counted: bool = True) -> dict[str, Any]:
    """The parameters of ``record_run_statement``, all named ``record_…``."""
    succeeded = counted and status == Run.Status.SUCCESS
    failed = counted and status in (Run.Status.FAILED, Run.Status.TIMEOUT, Run.Status.LOST)  # not: cancelled
    return {
        "record_at": Job._meta.get_field("last_run_at").get_db_prep_value(started_at, connection),
        "record_status": status,
        "record_runs": int(counted),
        "record_successes": int(succeeded),
        "record_failures": int(failed),
        "record_id": job_id,
    }


def record_run_statement(*, only_if: str = "") -> str:
    """``job_record_run``'s UPDATE, with ``only_if`` (SQL) added to its condition when given: a
    statement that ends a run makes it one of its WITH queries, run only if the run was ended."""
    return _RECORD_RUN.format(only_if=f" AND {only_if}" if only_if else "", dependents=_DEPENDENTS)


def record_run_without_dependents() -> str:
    """SQL true when no job runs after the job of ``record_run_params`` (``%(record_id)s``): what
    the counters' statement returns, negated, for a statement that must not end a run with any."""
    return f"NOT {_DEPENDENTS}"


# Every expression in SET reads the row as it was before the UPDATE (in PostgreSQL and SQLite;
# MySQL would read last_run_at already set, hence the order).
_RECORD_RUN = """
UPDATE jobs_job SET
    last_run_status = CASE WHEN last_run_at IS NULL OR last_run_at <= %(record_at)s
        THEN %(record_status)s ELSE last_run_status END,
    last_run_at = CASE WHEN last_run_at IS NULL OR last_run_at <= %(record_at)s THEN %(record_at)s ELSE last_run_at END,
    run_count = run_count + %(record_runs)s,
    success_count = success_count + %(record_successes)s,
    failure_count = failure_count + %(record_failures)s
WHERE id = %(record_id)s{only_if}
RETURNING {dependents}
"""
# Whether any job runs after the job of record_run_params: what the counters' UPDATE returns.
_DEPENDENTS = "EXISTS (SELECT 1 FROM jobs_jobdependency WHERE upstream_id = %(record_id)s)"
_RECORD_RUN_ALONE = record_run_statement()


def job_complete_if_fired(*, job_id: str) -> None:
    """A one-off job whose fire has been claimed (next_run_at cleared) is completed by its run."""
    done = Job.objects.filter(
        pk=job_id, trigger=Job.Trigger.DATE, status=Job.Status.ACTIVE, next_run_at__isnull=True
    ).update(status=Job.Status.COMPLETED)
    if done:
        # A queryset update skips django-celery-beat's change signal: bump it by hand.
        PeriodicTask.objects.filter(crontask_job__pk=job_id).update(enabled=False)
        PeriodicTasks.update_changed()


def job_record_fires(fires: Iterable[tuple[str, datetime]]) -> None:
    """Fires (job id, nominal time) that no scheduler recorded, whose runs a worker made
    (``runs.claims``): noted in each job's ``last_fired_at`` as beat notes its own
    (``scheduling.fires``), unless a later fire is noted already. One UPDATE per fire time."""
    by_time: dict[datetime, list[str]] = defaultdict(list)
    for job_id, scheduled_for in fires:
        by_time[scheduled_for].append(job_id)
    for scheduled_for, job_ids in by_time.items():
        Job.objects.filter(Q(last_fired_at__isnull=True) | Q(last_fired_at__lt=scheduled_for), pk__in=job_ids).update(
            last_fired_at=scheduled_for
        )
