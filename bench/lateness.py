"""Second-level jobs run by real workers: lateness from nominal fire to run start, misses, doubles.

1,000 jobs (``--second-level-jobs``) every 10 seconds (``s/10 * * * * *``), all of them HTTP
calls to a local target. ``run_publish_lateness`` runs beat alone and reads the queue: when each
fire was published. ``run_lateness`` adds a worker pool: when each run started (``scheduled_for``
→ ``started_at``), which on a small machine measures the workers' capacity as much as beat, so it
also reports the CPU each run cost, by process: the worker's consumer and pool, PostgreSQL,
Redis, beat and the HTTP target. By default the jobs are spread over the ten seconds (a tenth of
them fire each second); ``same_second`` puts them all on the same second, which measures how fast
the worker pool starts them all more than it measures beat."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import psutil
from django.db.models import Count, QuerySet

from bench.dataset import Spec, insert
from bench.db import anchor_schedules
from bench.probe import OURS, ROOT, BeatProcess, CpuMeter, QueueWatch, processes_named, processes_of_user, stop_group
from bench.scenarios import Context, _cron_between, percentiles
from jobs.models import Job
from runs.models import Run
from tests.http_target import HttpTarget

JOBS = 1_000
WARMUP = 20  # seconds: the workers' pools fill and every job has fired once


def insert_second_level_jobs(*, jobs: int, same_second: bool) -> None:
    specs = (Spec(f"bench-{i:06d}", cron=f"{0 if same_second else i % 10}/10 * * * * *") for i in range(jobs))
    insert(specs, now=datetime.now(UTC))


def run_publish_lateness(ctx: Context, *, minutes: float, same_second: bool, jobs: int = JOBS) -> dict[str, Any]:
    """The same jobs with beat alone: every fire must reach the queue once, on time."""
    insert_second_level_jobs(jobs=jobs, same_second=same_second)
    anchor_schedules(datetime.now(UTC))
    watch = QueueWatch(ctx.broker_url, ctx.queue)
    beat = BeatProcess(OURS, ctx.env, ctx.logs / "publish-beat.log")
    try:
        start = datetime.now(UTC) + timedelta(seconds=WARMUP)
        time.sleep(WARMUP + 60 * minutes)
        end = datetime.now(UTC) - timedelta(seconds=2)
        beat_cores = beat.cpu() / (WARMUP + 60 * minutes)
        published = watch.messages()
    finally:
        beat.stop()
        watch.close()
    asked = _asked(start, end)
    ours = [m for m in published if (m.job_id, m.scheduled_for) in asked]
    got = {(m.job_id, m.scheduled_for) for m in ours}
    return {
        "jobs": jobs,
        "seconds": (end - start).total_seconds(),
        "asked": len(asked),
        "published": len(got),
        "missed": len(asked - got),
        "doubled": len(ours) - len(got),
        "lateness_ms": percentiles([late for m in ours if (late := m.lateness_ms) is not None]),
        "beat_cpu_pct": 100 * beat_cores,
    }


def _asked(start: datetime, end: datetime) -> set[tuple[str, datetime]]:
    return {
        (job_id, fire)
        for job_id, cron in Job.objects.values_list("id", "cron")
        for fire in _cron_between(cron, "UTC", start, end)
    }


def run_lateness(
    ctx: Context, *, minutes: float, concurrency: int, same_second: bool, jobs: int = JOBS
) -> dict[str, Any]:
    with HttpTarget() as target:
        insert_second_level_jobs(jobs=jobs, same_second=same_second)
        for second in range(10):  # the path says which second of ten the job fires at
            url = f"{target.url}/ping/{second}"
            Job.objects.filter(cron__startswith=f"{second}/").update(url=url, timeout_seconds=5)
        anchor_schedules(datetime.now(UTC))
        worker = _start_worker(ctx, concurrency)
        beat = BeatProcess(OURS, ctx.env, ctx.logs / "lateness-beat.log")
        try:
            start = datetime.now(UTC) + timedelta(seconds=WARMUP)
            time.sleep(WARMUP)
            meter = _cpu_meter(worker, beat)
            time.sleep(60 * minutes)
            cpu = meter.since_start()
            cpu_end = datetime.now(UTC)
            end = cpu_end - timedelta(seconds=5)
            beat_cpu = beat.cpu()
        finally:
            beat.stop()
            time.sleep(10)  # let the workers finish what is queued
            stop_group(worker, timeout=30)
    return {
        **_judge(ctx, start, end, beat_cpu / (60 * minutes + WARMUP), concurrency),
        "target_hits": sum(n for path, n in target.hits.items() if path.startswith("/ping/")),
        "arrival_lateness_ms": _arrival_lateness(target.arrivals, start, end),
        "jobs": jobs,
        "cpu": _cpu_per_run(cpu, Run.objects.filter(scheduled_for__gt=start, scheduled_for__lte=cpu_end)),
    }


def _arrival_lateness(arrivals: list[tuple[float, str]], start: datetime, end: datetime) -> dict[str, float] | None:
    """Percentiles of how late each call reached the target after its fire, for the fires in
    (start, end] like the runs'. The job fires at the second its path names, every ten seconds,
    so a call is taken as less than ten seconds late: beyond that the runs' lateness shows it."""
    late = []
    for at, path in arrivals:
        if path.startswith("/ping/"):
            seconds_late = (at - int(path.rsplit("/", 1)[1])) % 10
            if start.timestamp() < at - seconds_late <= end.timestamp():
                late.append(1000 * seconds_late)
    return percentiles(late)


def _cpu_meter(worker: subprocess.Popen, beat: BeatProcess) -> CpuMeter:
    """Where the machine's CPU goes while the runs go on. PostgreSQL and Redis count only when
    they run on this machine (their processes are found by user and by name)."""
    consumer = psutil.Process(worker.pid)
    return CpuMeter({
        "worker_consumer": lambda: [consumer],
        "worker_pool": lambda: consumer.children(recursive=True),
        "postgres": lambda: processes_of_user("postgres"),
        "redis": lambda: processes_named("redis-server"),
        "beat": lambda: [beat.ps],
        # This process: the HTTP target's threads, and this meter's own readings, which at a
        # light load are most of it.
        "bench_and_target": lambda: [psutil.Process()],
    })  # fmt: skip


def _cpu_per_run(cpu: dict[str, float], runs: QuerySet[Run]) -> dict[str, Any]:
    """Milliseconds of CPU per run, by kind of process and for the whole machine (all cores)."""
    count = runs.exclude(started_at=None).count()
    per_run = {name: 1000 * seconds / count for name, seconds in cpu.items() if name != "wall"} if count else {}
    cores = psutil.cpu_count() or 1
    return {
        "runs": count,
        "ms_per_run": per_run,
        "machine_busy_pct": 100 * cpu["machine"] / cpu["wall"] / cores,
        "cores": cores,
    }


def _start_worker(ctx: Context, concurrency: int) -> subprocess.Popen:
    log = (ctx.logs / "lateness-worker.log").open("wb")
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "crontask", "worker", "-l", "INFO", "--concurrency", str(concurrency),
         "-n", f"bench-{os.getpid()}@%h", "--without-gossip", "--without-mingle", "--without-heartbeat"],
        cwd=ROOT, env=ctx.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip


def _judge(ctx: Context, start: datetime, end: datetime, beat_cores: float, concurrency: int) -> dict[str, Any]:
    runs = Run.objects.filter(scheduled_for__gt=start, scheduled_for__lte=end)
    rows = list(runs.values_list("job_id", "scheduled_for", "started_at", "status"))
    asked = _asked(start, end)
    got = {(job_id, fire) for job_id, fire, _, _ in rows}
    late = [1000 * (started - fire).total_seconds() for _, fire, started, _ in rows if started and fire]
    doubled_runs = runs.values("job_id", "scheduled_for").annotate(n=Count("id")).filter(n__gt=1).count()
    log = (ctx.logs / "lateness-worker.log").read_text(errors="replace")
    return {
        "seconds": (end - start).total_seconds(),
        "asked": len(asked),
        "runs": len(rows),
        "missed": len(asked - got),
        "doubled_runs": doubled_runs,
        "duplicate_deliveries": len(re.findall(r"duplicate delivery", log)),
        "statuses": dict(Counter(status for *_, status in rows)),
        "lateness_ms": percentiles(late),
        "beat_cpu_pct": 100 * beat_cores,
        "concurrency": concurrency,
    }
