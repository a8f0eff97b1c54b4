"""Reads for the dashboard: runs per hour, failure rates, slow jobs, what is running."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypedDict

from django.db.models import Avg, Count, F, FloatField, Max, Q
from django.db.models.functions import Cast, TruncHour
from django.utils import timezone

from jobs.models import Job
from runs.models import Run

FAILED = (Run.Status.FAILED, Run.Status.TIMEOUT, Run.Status.LOST)


@dataclass(frozen=True)
class HourBar:
    hour: datetime
    success: int
    failure: int


def runs_per_hour(*, now: datetime | None = None, hours: int = 24) -> list[HourBar]:
    """Successes and failures per hour over the last ``hours`` hours, oldest first, gaps filled."""
    now = now or timezone.now()
    # Hours of the current zone (the reader's, in the admin): TruncHour truncates in it too, and a
    # zone half an hour off UTC has its hours start at :30 UTC.
    start = timezone.localtime(now - timedelta(hours=hours - 1)).replace(minute=0, second=0, microsecond=0)
    rows = (
        Run.objects.filter(started_at__gte=start)
        .annotate(hour=TruncHour("started_at"))
        .values("hour")
        .annotate(
            success=Count("id", filter=Q(status=Run.Status.SUCCESS)), failure=Count("id", filter=Q(status__in=FAILED))
        )
    )
    counts = {row["hour"]: (row["success"], row["failure"]) for row in rows}
    bars = []
    for step in range(hours):
        hour = start + timedelta(hours=step)
        success, failure = counts.get(hour, (0, 0))
        bars.append(HourBar(hour=hour, success=success, failure=failure))
    return bars


def failure_rates(*, limit: int = 10) -> list[Job]:
    """Jobs with the highest share of failed runs (from their counters: no scan of the runs)."""
    return list(
        Job.objects.filter(run_count__gt=0, failure_count__gt=0)
        .annotate(rate=Cast(F("failure_count"), FloatField()) / Cast(F("run_count"), FloatField()))
        .order_by("-rate", "-failure_count")
        .only("id", "name", "run_count", "failure_count")[:limit]
    )


class SlowJob(TypedDict):
    job_id: str
    avg_ms: float
    max_ms: int
    runs: int


def slowest_jobs(*, now: datetime | None = None, limit: int = 10) -> list[SlowJob]:
    since = (now or timezone.now()) - timedelta(hours=24)
    return list(
        Run.objects.filter(started_at__gte=since, duration_ms__isnull=False)
        .values("job_id")
        .annotate(avg_ms=Avg("duration_ms"), max_ms=Max("duration_ms"), runs=Count("id"))
        .order_by("-avg_ms")[:limit]
    )


def upcoming_fires(*, limit: int = 20) -> list[Job]:
    """The next fires of the active jobs, soonest first (the job_due_idx index's order)."""
    return list(
        Job.objects.filter(status=Job.Status.ACTIVE, next_run_at__isnull=False)
        .order_by("next_run_at")
        .only("id", "name", "kind", "trigger", "cron", "interval_seconds", "run_at", "timezone", "next_run_at")[:limit]
    )


def running_now(*, limit: int = 50) -> list[Run]:
    return list(
        Run.objects.filter(status=Run.Status.RUNNING)
        .order_by("started_at")
        .only("id", "job_id", "trigger", "started_at", "worker")[:limit]
    )


class RunLog(TypedDict):
    id: int
    status: str
    finished: bool
    log_output: str
    log_offset: int
    log_reset: bool
    output: str
    output_offset: int
    output_reset: bool


def run_log(*, run_id: int, log_after: int = 0, output_after: int = 0) -> RunLog | None:
    """A run's log (python) and output (shell) after the offsets a reader has (in characters of
    the stored text), with the new offsets; None if there is no such run.

    The text only grows while the run goes on (``runs.execution.RunProgress``); the outcome may
    replace it as the run ends (the truncation marker, a last masked secret). An offset past the
    end then gives the whole text again, marked ``reset``. Both texts are read whole, in one
    query of three columns: each is at most CRONTASK_MAX_OUTPUT_BYTES (and a marker).
    """
    row = Run.objects.filter(pk=run_id).values("status", "log_output", "output").first()
    if row is None:
        return None
    log, log_reset = _after(row["log_output"], log_after)
    output, output_reset = _after(row["output"], output_after)
    return RunLog(
        id=run_id,
        status=row["status"],
        finished=row["status"] in Run.FINISHED,
        log_output=log,
        log_offset=len(row["log_output"]),
        log_reset=log_reset,
        output=output,
        output_offset=len(row["output"]),
        output_reset=output_reset,
    )


def _after(text: str, offset: int) -> tuple[str, bool]:
    """The text after ``offset``, or all of it (and True) if it is shorter than that."""
    return (text, True) if offset > len(text) else (text[offset:], False)
