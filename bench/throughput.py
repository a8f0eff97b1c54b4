"""Run throughput: N HTTP jobs due at the same minute, started by a real ``celery beat`` and a real
``celery worker`` of 4 processes (``--run-concurrency``), all calling a local HTTP target.

    bench/run --stages throughput --sizes '' --run-jobs 10000
    bench/run --stages throughput --run-jobs 2000 --run-baseline-code /tmp/crontask-main
                                     the same, once with the code in that directory (an export of
                                     the release before, say) and once with this one, alternately

For each code tree (this one, and ``--run-baseline-code`` if given), on a fresh database: N jobs
whose 5-field cron names one minute, far enough ahead for beat and the workers to be up; beat
sends their fires ahead in batches, as it does in production (CRONTASK_FIRE_* defaults). It
reports when the runs began (``started_at - scheduled_for``: the last one is the figure the issue
asks for, 30 s for 10,000 with 4 worker processes), when the last one ended, none missed or
doubled, and the CPU of each run by process (worker consumer and pool, PostgreSQL, Redis, beat,
and this process: the HTTP target and the meter), from 5 s before the fire until the last run ended.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psutil
import redis
from django.db.models import Count

from bench.dataset import Spec, insert
from bench.db import Databases, anchor_schedules
from bench.probe import OURS, ROOT, BeatProcess, CpuMeter, processes_named, processes_of_user, stop_group
from bench.scenarios import Context, percentiles
from jobs.models import Job
from runs.models import Run
from tests.http_target import HttpTarget

SETUP_SECONDS = 40  # at least this long between the jobs' creation and their minute
TIMEOUT_SECONDS = 240  # after the fire: the runs not ended by then count as not ended


def run_throughput(
    ctx: Context, dbs: Databases, empty: str, *, jobs: int, concurrency: int, baseline_code: Path | None
) -> dict[str, Any]:
    """``jobs`` HTTP jobs due at one minute, run by this code's worker and beat, then by the
    baseline's if given: in the order A B B A, each code once in the first half and once in the
    second. Whichever went first used 19 to 28 % more CPU a run, in every part of the machine,
    the bench's own process included (two runs of the stage, each code once first: the position,
    not the code), so one round each would favour the code run second. Each code's figures are
    the mean of its two rounds (each round's are kept under ``rounds``)."""
    trees = {"this code": ROOT} | ({"baseline code": baseline_code} if baseline_code else {})
    out: dict[str, Any] = {"jobs": jobs, "concurrency": concurrency, "trees": {k: str(v) for k, v in trees.items()}}
    order = [*trees, *reversed(trees)] if baseline_code else [*trees]
    rounds: dict[str, list[dict[str, Any]]] = {label: [] for label in trees}
    for label in order:
        code = trees[label]
        dbs.recreate(empty)
        print(f"{jobs:,} HTTP jobs due at the same minute, {concurrency} worker processes, {label} ({code}) …",
              flush=True)  # fmt: skip
        name = f"{label.replace(' ', '-')}-{len(rounds[label]) + 1}"
        rounds[label].append(_one(ctx, code, dbs.work, jobs=jobs, concurrency=concurrency, label=name))
        print_throughput(label, rounds[label][-1])
    for label, results in rounds.items():
        out[label] = _mean_of(results)
    return out


def _mean_of(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """One code's rounds as one result: the times and the CPU a run averaged, the runs missed or
    doubled added up (each round must have none), each round kept."""
    if len(rounds) == 1:
        return rounds[0]

    def mean(values: list[float | None]) -> float | None:
        return None if any(v is None for v in values) else sum(v for v in values if v is not None) / len(values)

    cpu_names = set().union(*(r["cpu_ms_per_run"] for r in rounds))
    return {
        "rounds": rounds,
        "runs": sum(r["runs"] for r in rounds),
        "missed": sum(r["missed"] for r in rounds),
        "doubled": sum(r["doubled"] for r in rounds),
        "last_started_s": mean([r["last_started_s"] for r in rounds]),
        "last_ended_s": mean([r["last_ended_s"] for r in rounds]),
        "cpu_ms_per_run": {name: mean([r["cpu_ms_per_run"].get(name) for r in rounds]) for name in sorted(cpu_names)},
    }


def _one(ctx: Context, code: Path, work: str, *, jobs: int, concurrency: int, label: str) -> dict[str, Any]:
    # A queue of its own: beat sends again the fires still waiting after a while (scheduling.outbox),
    # and those left over when the workers stop must not reach the next tree's workers.
    ctx = replace(ctx, env={**ctx.env, "CRONTASK_QUEUE": f"{ctx.queue}-{label}"})
    now = datetime.now(UTC)
    fire = (now + timedelta(seconds=SETUP_SECONDS + 60)).replace(second=0, microsecond=0)
    with HttpTarget() as target:
        insert((Spec(f"bench-{i:06d}", cron=f"{fire.minute} {fire.hour} * * *") for i in range(jobs)), now=now)
        Job.objects.update(url=f"{target.url}/ok", timeout_seconds=30)
        anchor_schedules(datetime.now(UTC))
        worker = _start_worker(ctx, code, concurrency, ctx.logs / f"throughput-{label}-worker.log")
        beat = BeatProcess(OURS, ctx.env, ctx.logs / f"throughput-{label}-beat.log", cwd=code)
        try:
            time.sleep(max(0.0, (fire - datetime.now(UTC)).total_seconds() - 5))
            meter = _meter(worker, beat, work)
            runs = Run.objects.filter(scheduled_for=fire)
            deadline = fire + timedelta(seconds=TIMEOUT_SECONDS)
            while datetime.now(UTC) < deadline:
                time.sleep(0.5)
                if runs.filter(finished_at__isnull=False).count() >= jobs:
                    break
            cpu = meter.since_start()
        finally:
            beat.stop()
            stop_group(worker, timeout=30)
        hits = target.hits["/ok"]
        left = redis.Redis.from_url(ctx.broker_url)
        left_over = left.llen(ctx.env["CRONTASK_QUEUE"])
        left.delete(ctx.env["CRONTASK_QUEUE"])
    log = (ctx.logs / f"throughput-{label}-worker.log").read_text(errors="replace")
    rows = list(runs.values_list("job_id", "started_at", "finished_at", "status"))
    started = [1000 * (s - fire).total_seconds() for _, s, _, _ in rows if s is not None]
    ended = [(f - fire).total_seconds() for _, _, f, _ in rows if f is not None]
    per_run = {name: 1000 * seconds / len(rows) for name, seconds in cpu.items() if name != "wall"} if rows else {}
    return {
        "fire": fire.isoformat(),
        "runs": len(rows),
        "missed": jobs - len({job_id for job_id, *_ in rows}),
        "doubled": runs.values("job_id").annotate(n=Count("id")).filter(n__gt=1).count(),
        "statuses": dict(Counter(status for *_, status in rows)),
        "target_hits": hits,
        "messages_received": log.count("Task runs.tasks.execute_fires[") // 2,  # received, then succeeded
        "fires_delivered_again": log.count("duplicate delivery"),
        "messages_left_over": left_over,
        "started_ms": percentiles(started),
        "last_started_s": max(started) / 1000 if started else None,
        "last_ended_s": max(ended) if ended else None,
        "cpu_ms_per_run": per_run,
        "cpu_seconds": cpu,
        "machine_busy_pct": 100 * cpu["machine"] / cpu["wall"] / (psutil.cpu_count() or 1),
        "load_average": list(psutil.getloadavg()),
    }


def _meter(worker: subprocess.Popen, beat: BeatProcess, work: str) -> CpuMeter:
    consumer = psutil.Process(worker.pid)
    return CpuMeter({
        "worker_consumer": lambda: [consumer],
        "worker_pool": lambda: consumer.children(recursive=True),
        # The backends serving the benchmark's database: the server is shared with other work.
        "postgres": lambda: _backends_of(work),
        "postgres_all": lambda: processes_of_user("postgres"),
        "redis": lambda: processes_named("redis-server"),
        "beat": lambda: [beat.ps],
        "bench_and_target": lambda: [psutil.Process()],
    })  # fmt: skip


def _backends_of(database: str) -> list[psutil.Process]:
    """PostgreSQL's backends connected to ``database`` (their command line names it)."""
    found = []
    for process in processes_of_user("postgres"):
        try:
            if f" {database} " in " ".join(process.cmdline()) + " ":
                found.append(process)
        except psutil.Error:
            continue
    return found


def _start_worker(ctx: Context, code: Path, concurrency: int, log_path: Path) -> subprocess.Popen:
    log = log_path.open("wb")
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "crontask", "worker", "-l", "INFO", "--concurrency", str(concurrency),
         "-n", f"bench-throughput-{time.time_ns()}@%h", "--without-gossip", "--without-mingle", "--without-heartbeat"],
        cwd=code, env=ctx.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip


def print_throughput(label: str, r: dict[str, Any]) -> None:
    pct = r["started_ms"] or {}
    cpu = r["cpu_ms_per_run"]
    print(f"  {label}: {r['runs']:,} runs ({r['statuses']}), missed {r['missed']}, doubled {r['doubled']}, "
          f"target hit {r['target_hits']:,} times; {r['messages_received']} messages, "
          f"{r['fires_delivered_again']} fires delivered again (beat's resends), "
          f"{r['messages_left_over']} left")  # fmt: skip
    if pct:
        print(f"  began after the fire: p50 {pct['p50']:.0f} ms, p99 {pct['p99']:.0f} ms, "
              f"last {r['last_started_s']:.1f} s (target: all within 30 s for 10,000); "
              f"last ended {r['last_ended_s']:.1f} s")  # fmt: skip
    if cpu:
        parts = ", ".join(f"{name} {ms:.2f}" for name, ms in cpu.items() if name != "machine")
        print(f"  CPU per run (ms): {parts}; whole machine {cpu['machine']:.2f} "
              f"(busy {r['machine_busy_pct']:.0f} %, load {r['load_average'][0]:.2f})")  # fmt: skip


def print_comparison(results: dict[str, Any]) -> None:
    new, base = results.get("this code"), results.get("baseline code")
    if not new or not base:
        return
    both = "rounds" in new and "rounds" in base
    print("\n| run throughput" + (" (the mean of each code's two rounds, A B B A)" if both else "")
          + " | this code | baseline code | ratio |")  # fmt: skip
    print("|---|---|---|---|")
    rows = [("last run began (s)", new["last_started_s"], base["last_started_s"]),
            ("last run ended (s)", new["last_ended_s"], base["last_ended_s"])]  # fmt: skip
    rows += [(f"CPU per run: {k} (ms)", new["cpu_ms_per_run"].get(k), base["cpu_ms_per_run"].get(k))
             for k in ("worker_consumer", "worker_pool", "postgres", "postgres_all", "redis", "beat",
                       "bench_and_target", "machine")]  # fmt: skip
    for name, a, b in rows:
        ratio = f"{a / b:.2f}" if a is not None and b else ""
        print(
            f"| {name} | {a:.2f} | {b:.2f} | {ratio} |"
            if a is not None and b is not None
            else f"| {name} | {a} | {b} | |"
        )
