"""The metrics every process counts, for ``GET /metrics`` (``monitoring.metrics``, which adds them
up across processes and adds the ones read from the database and the broker at each scrape).

prometheus_client runs in its multiprocess mode: each process writes its counts to files of its
own in ``PROMETHEUS_MULTIPROC_DIR`` (``core.multiprocess``), so web, the workers' pool processes
and beat add up. The metrics belong to no registry: a registry of one process would only see that
process's counts. They are made at their first use (``get()``), so a process writes nothing
until it counts something (importing the project and ``django.setup()`` write nothing).

Labels take few values (a job's kind, a run's trigger and status): no job id, unless
``CRONTASK_METRICS_PER_JOB`` asks for it on ``crontask_runs_total``.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import ParamSpec, Protocol

from django.conf import settings
from prometheus_client import Counter, Histogram, values

from core import multiprocess

logger = logging.getLogger(__name__)

# Every metric is the multiprocess kind, whoever imported prometheus_client first (it chooses at
# its import, from the environment, otherwise), and names its files by host and process id.
values.ValueClass = values.MultiProcessValue(process_identifier=multiprocess.process_identifier)

#: Seconds: from 10 ms (an HTTP call on the same network) to an hour (a long job).
DURATION_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
#: Seconds late: fires start on time to within milliseconds (beat sends them ahead); the top
#: buckets are a backlog or a stopped worker.
LATENESS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600)
#: Seconds: 0 is a fire claimed ahead of its time or on it, as beat does when it keeps up.
CLAIM_LAG_BUCKETS = (0, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)


def directory() -> Path:
    """The metrics directory, made if need be; prometheus_client reads it from the environment
    each time a process opens its files (after a fork too)."""
    path = Path(settings.PROMETHEUS_MULTIPROC_DIR)
    path.mkdir(parents=True, exist_ok=True)
    os.environ[multiprocess.ENV] = str(path)
    return path


def runs_counter(*, per_job: bool) -> Counter:
    labels = ["kind", "trigger", "status", *(["job"] if per_job else [])]
    return Counter("crontask_runs", "Runs that ended, by the job's kind, the run's trigger and its status.",
                   labels, registry=None)  # fmt: skip


@dataclass
class Metrics:
    runs: Counter
    run_duration: Histogram
    run_lateness: Histogram
    fires_published: Counter
    fires_skipped_by_beat: Counter
    beat_claim_lag: Histogram
    notifications: Counter
    per_job: bool


_made: Metrics | None = None
_making = threading.Lock()


def get() -> Metrics:
    """This process's metrics, made at the first call (two made at once would share one file badly)."""
    global _made
    if _made is None:
        with _making:
            if _made is None:
                _made = _make()
    return _made


def _make() -> Metrics:
    directory()
    per_job = settings.CRONTASK_METRICS_PER_JOB
    return Metrics(
        runs=runs_counter(per_job=per_job),
        run_duration=Histogram(
            "crontask_run_duration_seconds", "How long runs took, from their start to their end, by the job's kind.",
            ["kind"], buckets=DURATION_BUCKETS, registry=None,
        ),
        run_lateness=Histogram(
            "crontask_run_start_lateness_seconds",
            "How late scheduled runs (first attempts) started after their fire's time, by the job's kind.",
            ["kind"], buckets=LATENESS_BUCKETS, registry=None,
        ),
        fires_published=Counter(
            "crontask_fires_published",
            "Fires beat handed to the broker (a fire sent again after a broker outage counts again).", registry=None,
        ),
        fires_skipped_by_beat=Counter(
            "crontask_fires_skipped_by_beat",
            "Fires beat recorded as skipped runs itself, by reason: missed (they fell due while it could not "
            "claim them) or superseded (a later fire of the job was due when the broker came back).",
            ["reason"], registry=None,
        ),
        beat_claim_lag=Histogram(
            "crontask_beat_claim_lag_seconds",
            "How long after its time beat claimed each fire (0: ahead of it or on it).",
            buckets=CLAIM_LAG_BUCKETS, registry=None,
        ),
        notifications=Counter(
            "crontask_notifications",
            "Attempts at delivering a notification, by outcome: sent, failed (the last attempt), retrying "
            "(another is due).",
            ["status"], registry=None,
        ),
        per_job=per_job,
    )  # fmt: skip


P = ParamSpec("P")
_failing = threading.Event()


def best_effort(count: Callable[P, None]) -> Callable[P, None]:
    """A count that never fails its caller (beat's tick, a run's outcome, a notification): an
    unusable metrics directory (a read-only disk, a full one) is logged once, and nothing counted."""

    @functools.wraps(count)
    def counting(*args: P.args, **kwargs: P.kwargs) -> None:
        try:
            count(*args, **kwargs)
        except Exception:
            if not _failing.is_set():
                _failing.set()
                logger.exception("metrics are not counted in this process (PROMETHEUS_MULTIPROC_DIR)")

    return counting


@best_effort
def count_run(
    *, kind: str, trigger: str, status: str, job_id: str, duration: float | None, lateness: float | None
) -> None:
    """A run ended (call once it is committed): ``duration`` and ``lateness`` in seconds, None where
    they do not apply (a run that never started; one that is not a scheduled first attempt)."""
    made = get()
    labels = {"kind": kind, "trigger": trigger, "status": status}
    if made.per_job:
        labels["job"] = job_id
    made.runs.labels(**labels).inc()
    if duration is not None:
        made.run_duration.labels(kind=kind).observe(duration)
    if lateness is not None:
        made.run_lateness.labels(kind=kind).observe(max(0.0, lateness))


@best_effort
def count_fires_published(count: int) -> None:
    get().fires_published.inc(count)


class ClaimedFire(Protocol):
    """A fire beat claimed (``scheduling.fires.Fire``)."""

    @property
    def scheduled_for(self) -> datetime: ...
    @property
    def missed(self) -> tuple[datetime, ...]: ...


@best_effort
def observe_claims(fires: Iterable[ClaimedFire], *, now: datetime) -> None:
    """Beat claimed ``fires`` at ``now`` and recorded the fires they stand for (``missed``) as
    skipped runs (call once that is committed)."""
    made = get()
    missed = 0
    for fire in fires:
        made.beat_claim_lag.observe(max(0.0, (now - fire.scheduled_for).total_seconds()))
        missed += len(fire.missed)
    if missed:
        made.fires_skipped_by_beat.labels(reason="missed").inc(missed)


@best_effort
def count_fires_superseded(count: int) -> None:
    if count:
        get().fires_skipped_by_beat.labels(reason="superseded").inc(count)


@best_effort
def count_notification(*, sent: bool, retrying: bool) -> None:
    """An attempt at delivering a notification was recorded."""
    get().notifications.labels(status="sent" if sent else "retrying" if retrying else "failed").inc()
