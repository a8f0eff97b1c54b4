"""Queueing runs: a manual run (run now, and a run again, for the API and the admin), a retry, and
their messages (and those of the dependency runs ``runs.dependencies`` makes).

Every run exists as a ``queued`` row before its message is sent (``scheduling.outbox``): the
message goes once the transaction that made the run commits, and if the broker cannot take it,
the run stays queued and unsent and beat sends it when the broker is back. A worker claims it
(``runs.claims``) and runs it (``runs.execution``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from celery import Task, current_app
from django.core.exceptions import ValidationError
from django.db import DatabaseError, IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from audit.services import audit_context, audit_record
from core.outage import describe
from jobs.beat_sync import EXECUTE_TASK
from jobs.models import Job
from jobs.preparation import check_shell_permission
from jobs.secrets import mask_text, restore_masked
from jobs.validators import run_override_errors
from runs import policies
from runs.models import Run

if TYPE_CHECKING:
    from jobs.preparation import Actor

logger = logging.getLogger(__name__)


def job_run_now(*, job: Job, overrides: Mapping[str, Any] | None = None, actor: Actor = None) -> Run:
    """Queue a manual run of the job, whatever its status, for a user (the API, the admin)."""
    check_shell_permission(actor, job.kind)
    # A mask among one-off values (copied from a run's masked overrides) stands for no value the
    # job keeps: refused, rather than sent as the header or kwarg.
    return run_enqueue_manual(job=job, overrides=restore_masked(dict(overrides or {}), None))


def run_again(*, run: Run, actor: Actor = None) -> Run:
    """Run ``run``'s job now again, with the same one-off values (``overrides``): a run now, by its
    rules (any status of the job, the shell permission). The values are checked again against the
    job as it is now, as run now checks them: it may have changed kind or handler since."""
    job = Job.objects.filter(pk=run.job_id).first()
    if job is None:  # deleted since the run was read (its runs go with it)
        message = _("Run %(run)d's job %(job)r no longer exists.")
        raise ValidationError({"job": message % {"run": run.pk, "job": run.job_id}})
    check_shell_permission(actor, job.kind)
    errors = run_override_errors(run.overrides, job=job)
    if errors:
        raise ValidationError(errors)
    with audit_context(rerun_of=run.pk):
        return job_run_now(job=job, overrides=run.overrides, actor=actor)


def run_enqueue_manual(*, job: Job, overrides: dict[str, Any]) -> Run:
    """Create a queued manual run and queue its execution once the transaction commits."""
    with transaction.atomic():
        run = create_manual(job, overrides)
        _queue(job_id=job.pk, run_id=run.pk)
        audit_record(action="run_now", job_id=job.pk, run_id=run.pk)
    return run


def create_manual(job: Job, overrides: dict[str, Any], *, sent: bool = False) -> Run:
    """A ``queued`` manual run of ``job``; ``sent`` when it needs no message (it runs here)."""
    now = timezone.now()
    return Run.objects.create(
        job=job,
        trigger=Run.Trigger.MANUAL,
        status=Run.Status.QUEUED,
        queued_at=now,
        sent_at=now if sent else None,
        target=mask_text(job.target),
        overrides=overrides,
    )


def queue_retry(run: Run, job: Job) -> None:
    """Attempt n+1 of the same fire, after its backoff (``policies.retry_delay``)."""
    delay = policies.retry_delay(attempt=run.attempt, backoff_seconds=job.retry_backoff_seconds)
    try:
        with transaction.atomic():
            retry = Run.objects.create(
                job=job,
                trigger=Run.Trigger.RETRY,
                scheduled_for=run.scheduled_for,
                attempt=run.attempt + 1,
                retry_of_id=run.retry_of_id or run.pk,
                upstream_run_id=run.upstream_run_id,
                status=Run.Status.QUEUED,
                queued_at=timezone.now() + timedelta(seconds=delay),
                target=run.target,
                overrides=run.overrides,
            )
    except IntegrityError:
        return  # this attempt is already queued
    _queue(job_id=job.pk, run_id=retry.pk, countdown=delay)


def queue_run(*, job_id: str, run_id: int) -> None:
    """Send a queued run's message once the transaction that created it commits (a dependency
    run: ``runs.dependencies``)."""
    _queue(job_id=job_id, run_id=run_id)


def _queue(*, job_id: str, run_id: int, countdown: float = 0) -> None:
    """Send the queued run's message once the transaction that created it commits.

    If the broker cannot take it, the run stays queued and unsent, and beat sends it when the
    broker is back (``scheduling.outbox``): the caller (a request, a finishing run) goes on unharmed.
    """

    def send() -> None:
        task = execute_job()
        kwargs = {"job_id": job_id, "run_id": run_id}
        try:
            if countdown:  # a retry's delay; otherwise no ETA at all (a zero countdown would set one)
                task.apply_async(kwargs=kwargs, countdown=countdown, retry_policy=policies.SEND_RETRY)
            else:
                task.apply_async(kwargs=kwargs, retry_policy=policies.SEND_RETRY)
        except Exception as exc:  # noqa: BLE001 - whatever the transport raises, the run is safe
            logger.warning("run %s of job %s is queued; its message will be sent when the broker is back (%s)",
                           run_id, job_id, describe(exc))  # fmt: skip
            return
        try:
            mark_runs_sent([run_id], at=timezone.now())
        except DatabaseError as exc:  # beat then sends it once more; its claim takes it once
            logger.warning("could not note that run %s was sent: %s", run_id, describe(exc))

    transaction.on_commit(send)


def execute_job() -> Task:
    """The ``execute_job`` task, from the Celery app's registry by its name (``RunsConfig.ready``
    registers runs.tasks): runs.tasks calls the run modules, so they do not import it. The task
    itself, not a message sent by name: its options and the app's (eager mode) apply."""
    return current_app.tasks[EXECUTE_TASK]


def mark_runs_sent(pks: Sequence[int], *, at: datetime) -> None:
    """Note that the runs' messages were handed to the broker (beat's outbox sends the others)."""
    if pks:
        Run.objects.filter(pk__in=pks).update(sent_at=at)
