"""Celery tasks: thin wrappers that load by id and call a service."""

from __future__ import annotations

from datetime import datetime

from celery import shared_task
from django.utils.dateparse import parse_datetime

from runs import services

# A delivery whose claim the database refused (it was unreachable for a while) is sent again this
# many times, this many seconds apart, rather than acknowledged and dropped.
CLAIM_RETRIES = {"max_retries": 20, "countdown": 5}


@shared_task(name="runs.tasks.execute_job", bind=True, acks_late=True, ignore_result=True)
def execute_job(
    self,  # noqa: ANN001 - Celery's bound task
    job_id: str,
    scheduled_for: str | None = None,
    attempt: int = 1,
    run_id: int | None = None,
) -> None:
    try:
        services.run_execute(
            job_id=job_id,
            scheduled_for=parse_datetime(scheduled_for) if scheduled_for else None,
            attempt=attempt,
            run_id=run_id,
            worker=self.request.hostname or "",
            celery_task_id=self.request.id or "",
        )
    except services.ClaimFailed as exc:
        raise self.retry(exc=exc, **CLAIM_RETRIES) from exc


@shared_task(name="runs.tasks.execute_fires", bind=True, acks_late=True, ignore_result=True)
def execute_fires(self, fires: list[list[str]]) -> None:  # noqa: ANN001 - Celery's bound task
    """Several HTTP fires sent together by beat: ``[[job_id, scheduled_for], ...]``."""
    try:
        services.run_execute_fires(
            fires=[(job_id, _when(scheduled_for)) for job_id, scheduled_for in fires],
            worker=self.request.hostname or "",
            celery_task_id=self.request.id or "",
        )
    except services.ClaimFailed as exc:
        raise self.retry(exc=exc, **CLAIM_RETRIES) from exc


@shared_task(name="runs.tasks.reap_lost_runs", ignore_result=True)
def reap_lost_runs() -> int:
    return services.reap_lost_runs()


def _when(text: str) -> datetime:
    when = parse_datetime(text)
    if when is None:
        raise ValueError(f"not a date and time: {text!r}")
    return when
