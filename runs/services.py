"""Running a job: claim the Run for a fire, execute it, record how it ended.

A scheduled fire is claimed by inserting its Run under the unique (job, scheduled_for,
attempt) constraint, so a message delivered twice, or fired by two schedulers, makes one run.
A manual run is created ``queued`` by the request and claimed by a conditional update.
"""

from __future__ import annotations

import logging
import traceback
from datetime import datetime
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from jobs import executors
from jobs import services as job_services
from jobs.executors.base import Outcome
from jobs.models import Job
from runs.models import Run

logger = logging.getLogger(__name__)


def run_enqueue_manual(*, job: Job, overrides: dict[str, Any]) -> Run:
    """Create a queued manual run and queue its execution once the transaction commits."""
    from runs.tasks import execute_job

    with transaction.atomic():
        run = Run.objects.create(
            job=job,
            trigger=Run.Trigger.MANUAL,
            status=Run.Status.QUEUED,
            queued_at=timezone.now(),
            target=job.target,
            overrides=overrides,
        )
        transaction.on_commit(lambda: execute_job.delay(job_id=job.id, run_id=run.id))
    return run


def run_execute(
    *,
    job_id: str,
    scheduled_for: datetime | None = None,
    attempt: int = 1,
    run_id: int | None = None,
    worker: str = "",
    celery_task_id: str = "",
) -> Run | None:
    """Execute one delivery of a fire (or of a queued manual run). None if it was not ours to run."""
    now = timezone.now()
    job = Job.objects.filter(pk=job_id).first()
    if job is None:
        logger.warning("job %s no longer exists; message dropped", job_id)
        return None
    if run_id is not None:
        run = _claim_queued(run_id=run_id, now=now, worker=worker, celery_task_id=celery_task_id)
    else:
        # A message without a nominal time (e.g. from the vanilla DatabaseScheduler) is taken
        # as a fire at the current second.
        fire = scheduled_for or now.replace(microsecond=0)
        run = _claim_fire(
            job=job, scheduled_for=fire, attempt=attempt, now=now, worker=worker, celery_task_id=celery_task_id
        )
    if run is None:
        return None
    if run.trigger == Run.Trigger.SCHEDULED and job.status == Job.Status.PAUSED:
        return _finish(run, Outcome(status=Run.Status.SKIPPED, error="The job was paused before this fire started."))
    try:
        outcome = executors.execute(job, overrides=run.overrides)
    except Exception as exc:  # an executor bug must not leave the run "running"
        logger.exception("executor crashed on run %s of job %s", run.pk, job.pk)
        outcome = Outcome(
            status=Run.Status.FAILED, error=f"{type(exc).__name__}: {exc}", traceback=traceback.format_exc()
        )
    return _finish(run, outcome)


def _claim_fire(
    *, job: Job, scheduled_for: datetime, attempt: int, now: datetime, worker: str, celery_task_id: str
) -> Run | None:
    try:
        with transaction.atomic():
            return Run.objects.create(
                job=job,
                trigger=Run.Trigger.SCHEDULED if attempt == 1 else Run.Trigger.RETRY,
                scheduled_for=scheduled_for,
                attempt=attempt,
                status=Run.Status.RUNNING,
                queued_at=scheduled_for,
                started_at=now,
                target=job.target,
                worker=worker,
                celery_task_id=celery_task_id,
            )
    except IntegrityError:
        logger.info("duplicate delivery of job %s fire %s attempt %s ignored", job.pk, scheduled_for, attempt)
        return None


def _claim_queued(*, run_id: int, now: datetime, worker: str, celery_task_id: str) -> Run | None:
    claimed = Run.objects.filter(pk=run_id, status=Run.Status.QUEUED).update(
        status=Run.Status.RUNNING, started_at=now, worker=worker, celery_task_id=celery_task_id
    )
    if not claimed:
        logger.info("run %s was already claimed; duplicate delivery ignored", run_id)
        return None
    return Run.objects.get(pk=run_id)


def _finish(run: Run, outcome: Outcome) -> Run:
    """Store the outcome on the run and fold it into the job's counters."""
    finished = timezone.now()
    run.status = outcome.status
    run.finished_at = finished
    run.duration_ms = max(0, int((finished - run.started_at).total_seconds() * 1000))
    run.status_code = outcome.status_code
    run.response_body = outcome.response_body
    run.result = outcome.result
    run.exit_code = outcome.exit_code
    run.output = outcome.output
    run.error = outcome.error
    run.traceback = outcome.traceback
    with transaction.atomic():
        run.save(
            update_fields=[
                "status",
                "finished_at",
                "duration_ms",
                "status_code",
                "response_body",
                "result",
                "exit_code",
                "output",
                "error",
                "traceback",
            ]
        )
        executed = outcome.status not in (Run.Status.SKIPPED, Run.Status.CANCELLED)
        job_services.job_record_run(job_id=run.job_id, status=run.status, started_at=run.started_at, counted=executed)
        if run.trigger != Run.Trigger.MANUAL:
            job_services.job_complete_if_fired(job_id=run.job_id)
    logger.info(
        "run finished run_id=%s job_id=%s status=%s duration_ms=%s", run.pk, run.job_id, run.status, run.duration_ms
    )
    return run
