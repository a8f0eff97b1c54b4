"""The worker's work per HTTP run, in process: CPU, SQL statements, PostgreSQL's CPU, a profile.

    python -m bench.runpath                       1,000 runs in batches of 20, after 100 of warm-up
    python -m bench.runpath --runs 2000 --profile var/bench/runpath.prof
    python -m bench.runpath --database NAME       the database it creates and drops

Each batch is what a worker's pool process does with one message of beat's (``execute_fires``,
run with ``apply``: no broker, ``memory://``): beat's part is done beforehand as beat does it
(``scheduling.outbox.record_fires``: the fires' runs are ``queued`` rows), then the claim, the
calls to a local HTTP server (``tests.http_target``) in their threads, and each outcome stored.
The fires are in the past (no hold), the jobs have no rule watching them and no dependents.

It reports, per run: this process's CPU (all its threads: ``time.process_time``), the CPU of the
PostgreSQL backend serving it (``psutil``, by ``pg_backend_pid()``), and the SQL statements sent
(``CaptureQueriesContext`` on the batch's connection; the call threads touch no database),
BEGIN and COMMIT included, with each statement's shape, on 10 batches more, after the timed
ones: the debug cursor that counts writes each statement out with its values (with server-side
binding, a client-side cursor a statement), which a worker does not. The statement count is
exact; the CPU figures are the process's own, so much less noisy than whole-machine ones on a
shared machine.
``--profile FILE`` writes a cProfile of the batches (the main thread and the call threads merged).
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import statistics
import sys
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.alerts import _admin, _shape, _urls
from tests.http_target import HttpTarget

ROOT = Path(__file__).resolve().parents[1]
BATCH = 20
COUNTED_BATCHES = 10  # batches whose statements are counted, after the timed ones
BASE_TIME = datetime(2026, 1, 1, tzinfo=UTC)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=1000, help="timed runs (default 1,000)")
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--batch", type=int, default=BATCH, help="fires per message (beat's batch size)")
    parser.add_argument("--jobs", type=int, default=200, help="distinct jobs the fires belong to")
    parser.add_argument("--profile", help="write a cProfile of the timed batches here")
    parser.add_argument("--database", default="crontask_bench_runpath", help="created and dropped")
    args = parser.parse_args(argv)
    server = os.environ.get("DATABASE_URL") or "postgres://postgres@127.0.0.1:5432/postgres"
    admin_dsn, work_url = _urls(server, args.database)
    _admin(admin_dsn, f'DROP DATABASE IF EXISTS "{args.database}" WITH (FORCE)')
    _admin(admin_dsn, f'CREATE DATABASE "{args.database}"')
    try:
        with HttpTarget() as target:
            results = measure(work_url, target, args)
    finally:
        from django.db import connections

        connections.close_all()
        _admin(admin_dsn, f'DROP DATABASE IF EXISTS "{args.database}" WITH (FORCE)')
    print_results(results)
    out = ROOT / "var" / "bench" / f"runpath-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(f"\nwritten to {out.relative_to(ROOT)}")
    return 0 if not results["problems"] else 1


def measure(work_url: str, target: HttpTarget, args: argparse.Namespace) -> dict[str, Any]:
    os.environ.update(DATABASE_URL=work_url, CELERY_BROKER_URL="memory://")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "crontask.settings")
    import logging

    import django

    django.setup()
    for name in ("runs", "jobs", "alerts", "celery"):
        logging.getLogger(name).setLevel(logging.WARNING)
    import psutil
    from django.core.management import call_command
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from bench.dataset import Spec, insert
    from jobs.models import Job
    from runs import execution
    from runs.models import Run
    from runs.tasks import execute_fires
    from scheduling.fires import Fire
    from scheduling.outbox import record_fires

    call_command("migrate", verbosity=0)
    ids = [f"bench-{i:05d}" for i in range(args.jobs)]
    insert((Spec(job_id, cron="0 0 1 1 *") for job_id in ids), now=datetime.now(UTC))
    Job.objects.update(url=f"{target.url}/ok", timeout_seconds=5)
    backend = psutil.Process(_backend_pid(connection))

    fired = 0

    def next_batch() -> list[list[str]]:
        nonlocal fired
        fires = []
        for _ in range(args.batch):
            job_id = ids[fired % len(ids)]
            at = BASE_TIME + timedelta(minutes=fired // len(ids))
            fires.append((job_id, at))
            fired += 1
        record_fires([Fire(job_id=j, scheduled_for=at, kind=Job.Kind.HTTP) for j, at in fires], now=at)
        return [[j, at.isoformat()] for j, at in fires]

    def run(fires: list[list[str]]) -> None:
        execute_fires.apply(kwargs={"fires": fires}, throw=True)

    for _ in range(max(1, args.warmup // args.batch)):
        run(next_batch())
    batches = [next_batch() for _ in range(max(1, args.runs // args.batch))]
    counted = [next_batch() for _ in range(COUNTED_BATCHES)]
    runs = len(batches) * args.batch
    profiles: list[cProfile.Profile] = []
    original = execution._call_and_time
    if args.profile:  # the call threads are profiled each on its own, then merged with the main thread's

        def profiled(*a: Any, **kw: Any) -> Any:
            profile = cProfile.Profile(time.thread_time)  # CPU, not waits
            profiles.append(profile)
            return profile.runcall(original, *a, **kw)

        execution._call_and_time = profiled
        main_profile = cProfile.Profile(time.thread_time)
        profiles.append(main_profile)
        main_profile.enable()
    wall, cpu, pg = time.perf_counter(), time.process_time(), _cpu(backend)
    try:
        for fires in batches:
            run(fires)
    finally:
        wall, cpu, pg = time.perf_counter() - wall, time.process_time() - cpu, _cpu(backend) - pg
        if args.profile:
            main_profile.disable()
            execution._call_and_time = original
    statements: list[int] = []
    shapes: Counter[str] = Counter()
    for fires in counted:  # untimed: the debug cursor that counts writes each statement out with its values
        with CaptureQueriesContext(connection) as captured:
            run(fires)
        statements.append(len(captured.captured_queries))
        shapes.update(_shape(query["sql"]) for query in captured.captured_queries)
    if args.profile:
        stats = pstats.Stats(profiles[0])
        for profile in profiles[1:]:
            stats.add(profile)
        stats.dump_stats(args.profile)
        calls_per_run = round(stats.total_calls / runs)  # type: ignore[attr-defined]  # pstats keeps it
    else:
        calls_per_run = None
    statuses = Counter(Run.objects.filter(scheduled_for__gte=BASE_TIME).values_list("status", flat=True))
    problems = []
    if statuses != {"success": fired}:
        problems.append(f"{fired} fires, runs {dict(statuses)}: all success expected")
    return {
        "measured": datetime.now(UTC).isoformat(),
        "runs": runs,
        "batch": args.batch,
        "threads_at_end": threading.active_count(),
        "worker_cpu_ms_per_run": round(1000 * cpu / runs, 3),
        "postgres_backend_cpu_ms_per_run": round(1000 * pg / runs, 3),
        "wall_ms_per_run": round(1000 * wall / runs, 3),
        "statements_per_run": round(statistics.mean(statements) / args.batch, 3),
        "statements_per_batch": statistics.median(statements),
        "shapes_per_batch": {shape[:400]: round(n / len(counted), 2) for shape, n in shapes.most_common()},
        "profile": args.profile,
        # Python function calls per run (cProfile's count; deterministic, unlike the CPU figures).
        "python_calls_per_run": calls_per_run,
        "problems": problems,
    }


def _backend_pid(connection: Any) -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return int(cursor.fetchone()[0])


def _cpu(process: Any) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


def print_results(results: dict[str, Any]) -> None:
    print(f"{results['runs']:,} HTTP runs in batches of {results['batch']} (execute_fires, in process)")
    print(f"  worker process CPU per run:     {results['worker_cpu_ms_per_run']:.3f} ms")
    print(f"  PostgreSQL backend CPU per run: {results['postgres_backend_cpu_ms_per_run']:.3f} ms")
    print(f"  wall time per run:              {results['wall_ms_per_run']:.3f} ms")
    print(f"  SQL statements per run:         {results['statements_per_run']:g} "
          f"({results['statements_per_batch']:g} per batch of {results['batch']})")  # fmt: skip
    if results["python_calls_per_run"] is not None:
        print(f"  Python function calls per run:  {results['python_calls_per_run']:,} (profiled)")
    print("  statements per batch, by shape:")
    for shape, n in results["shapes_per_batch"].items():
        print(f"    {n:6g}  {shape[:160]}")
    for problem in results["problems"]:
        print(f"PROBLEM: {problem}")


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
