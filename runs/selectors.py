"""Reads for the dashboard: runs per hour, failure rates, slow jobs, what is running."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypedDict

from django.db.models import Avg, Count, F, FloatField, Max, Min, Q
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


# A closed started_at window of at most this many runs is listed within the id range of its runs
# (``started_window_ids``); a wider one as any filter.
NARROW_WINDOW_RUNS = 100_000
# Nor is one with fewer runs than this started past its end (before its start, oldest first): the
# walk down the id index from the newest run reaches it at once.
NEAR_END_RUNS = 10_000


@dataclass(frozen=True)
class IdRange:
    """The smallest and largest id of the runs in a started_at window; None for both: no run in it."""

    lowest: int | None
    highest: int | None


def started_window_ids(
    *, after: datetime, before: datetime, newest_first: bool = True, cap: int = NARROW_WINDOW_RUNS
) -> IdRange | None:
    """The ids of the runs started in [``after``, ``before``) lie between these two; None where
    bounding the ids would not pay: more than ``cap`` runs started in the window (reading their
    ids would cost more than it saves), or fewer than ``NEAR_END_RUNS`` started after it (before
    it, if not ``newest_first``).

    For the runs lists (``runs.filters.RunFilter``), newest (or oldest) first by id: a page of a
    narrow window far back is otherwise a walk down the id index from the newest run until the
    window is reached (PostgreSQL assumes a window's runs are spread over all ids; they are
    together). Bounded by these ids, the walk starts at the window's newest run. The bounds are
    exact (read from the window's runs, not guessed from the times: a run's id and started_at are
    not in the same order), so a list filtered by the window and the ids is the same list. Index-only
    scans of ``run_started_id_idx`` (``started_at``, ``id``): at most ``NEAR_END_RUNS`` entries past
    the window's end, then at most ``cap`` + 1 in it.
    """
    past = Run.objects.filter(started_at__gte=before) if newest_first else Run.objects.filter(started_at__lt=after)
    if past.order_by().values("id")[:NEAR_END_RUNS].count() < NEAR_END_RUNS:
        return None
    window = Run.objects.filter(started_at__gte=after, started_at__lt=before).order_by().values("id")[: cap + 1]
    found = window.aggregate(runs=Count("id"), lowest=Min("id"), highest=Max("id"))
    if found["runs"] > cap:
        return None
    return IdRange(lowest=found["lowest"], highest=found["highest"])
