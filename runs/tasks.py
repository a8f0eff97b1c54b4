"""Celery tasks: thin wrappers that load by id and call a service."""

from __future__ import annotations

from datetime import datetime
from typing import TypedDict

from celery import Task, shared_task
from celery.exceptions import Retry
from django.utils.dateparse import parse_datetime

from runs import execution, reaper


# A delivery whose claim the database refused (it was unreachable for a while) is sent again this
# many times, this many seconds apart, rather than acknowledged and dropped. Each copy names the
# workers that gave up before it (``claimed_by``): one of their claims may have reached the
# database, and the copy takes that run over rather than leave it claimed and never run.
class _Retries(TypedDict):
    max_retries: int
    countdown: int


CLAIM_RETRIES = _Retries(max_retries=20, countdown=5)


def _retry_claim(task: Task, exc: execution.ClaimFailed, claimed_by: list[str]) -> Retry:
    kwargs = {**(task.request.kwargs or {}), "claimed_by": [*claimed_by, exc.claimant]}
    return task.retry(exc=exc, kwargs=kwargs, **CLAIM_RETRIES)


@shared_task(name="runs.tasks.execute_job", bind=True, acks_late=True, ignore_result=True)
def execute_job(
    self,  # noqa: ANN001 - Celery's bound task
    job_id: str,
    scheduled_for: str | None = None,
    attempt: int = 1,
    run_id: int | None = None,
    claimed_by: list[str] | None = None,
) -> None:
    try:
        execution.run_execute(
            job_id=job_id,
            scheduled_for=parse_datetime(scheduled_for) if scheduled_for else None,
            attempt=attempt,
            run_id=run_id,
            worker=self.request.hostname or "",
            celery_task_id=self.request.id or "",
            retrying_for=claimed_by or [],
        )
    except execution.ClaimFailed as exc:
        raise _retry_claim(self, exc, claimed_by or []) from exc


@shared_task(name="runs.tasks.execute_fires", bind=True, acks_late=True, ignore_result=True)
def execute_fires(self, fires: list[list[str]], claimed_by: list[str] | None = None) -> None:  # noqa: ANN001
    """Several HTTP fires sent together by beat: ``[[job_id, scheduled_for], ...]``."""
    try:
        execution.run_execute_fires(
            fires=[(job_id, _when(scheduled_for)) for job_id, scheduled_for in fires],
            worker=self.request.hostname or "",
            celery_task_id=self.request.id or "",
            retrying_for=claimed_by or [],
        )
    except execution.ClaimFailed as exc:
        raise _retry_claim(self, exc, claimed_by or []) from exc


@shared_task(name="runs.tasks.reap_lost_runs", ignore_result=True)
def reap_lost_runs() -> int:
    return reaper.reap_lost_runs()


def _when(text: str) -> datetime:
    when = parse_datetime(text)
    if when is None:
        raise ValueError(f"not a date and time: {text!r}")
    return when
