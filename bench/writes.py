"""The write path and the runs at scale (issue #23): imports, API creates, the runs lists, retention.

    bench/run --stages writes                 the stages below at their default sizes (a few minutes)
    bench/run --stages writes --import-jobs 100000 --runs 10000000
                                              the issue's sizes (about half an hour on 2 cores)

Each stage works in a database of its own on ``DATABASE_URL``'s server, made and dropped here, and
prints its figures beside the issue's target and the baseline it names:

- ``import``: ``manage.py import_jobs`` of N jobs of the realistic mix (``bench.dataset.mix_specs``:
  crons in five zones, intervals, dates) in a JSON file, timed in a child process as a user runs it.
  Baseline, in the same run: the one-by-one path it replaced (``services.job_create`` an entry,
  as ``import_jobs`` did before the bulk path), on a sample of the same entries.
- ``api``: ``POST /api/jobs/`` one job at a time, in this process (Django's test client: no
  network, one web process's work), creates a second and SQL statements a create; and the bulk
  endpoint ``POST /api/jobs/import/`` in requests of 10,000. Baseline: the issue's measure before
  (63 creates a second, 33 statements a create; the code that did that is gone).
- ``runs``: R runs (written by ``INSERT … SELECT generate_series``, spread over 100 jobs), then the
  latency (p50, p99 of 200 requests) of the runs list first page, a deep offset, a cursor page
  deep in the feed, and a job's runs. Baseline, same data: the first page with an exact count (the
  paginator the runs list had before).
- ``retention``: ``runs.retention.delete_old_runs`` deleting the older half of the runs (at least
  1,000,000 at the default sizes... or R/2), in batches; and the longest a batch held its locks.

Numbers are also written to ``var/bench/writes-*.json``. Quote medians and ratios from one run:
the machine is shared.
"""

from __future__ import annotations

import functools
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[1]
DATABASE = os.environ.get("BENCH_WRITES_DATABASE", "crontask_bench_writes")  # one of its own per checkout
TARGETS = {
    "import_jobs_per_s": 100_000 / 60,  # 100,000 jobs in under 60 s
    "api_creates_per_s": 200,
    "api_statements": 10,
    "runs_p99_ms": 50,
    "retention_s_per_million": 60,
}
BEFORE = {"api_creates_per_s": 63, "api_statements": 33, "import_ms_per_job": 13.2}  # the measures


def run_stages(*, import_jobs: int, api_jobs: int, runs: int, baseline_sample: int) -> dict[str, Any]:
    """All the stages, in a database made for them (``DATABASE_URL``'s server); returns the figures."""
    server = os.environ.get("DATABASE_URL") or "postgres://postgres@127.0.0.1:5432/postgres"
    work = urlunsplit(urlsplit(server)._replace(path=f"/{DATABASE}"))
    _recreate(server)
    os.environ["DATABASE_URL"] = work
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "crontask.settings")
    os.environ.setdefault("CELERY_BROKER_URL", "memory://")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    results: dict[str, Any] = {"started": datetime.now(UTC).isoformat()}
    try:
        results["import"] = _import_stage(import_jobs, baseline_sample, work)
        _empty_jobs()
        results["api"] = _api_stage(api_jobs)
        _empty_jobs()
        results["runs"] = _runs_stage(runs)
        results["retention"] = _retention_stage()
    finally:
        from django.db import connections

        connections.close_all()
        _drop(server)
    out = ROOT / "var" / "bench" / f"writes-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2, default=str))
    print_writes(results)
    print(f"\nall numbers: {out}")
    return results


# --- stages -----------------------------------------------------------------------------------


def _import_stage(n: int, sample: int, database_url: str) -> dict[str, Any]:
    from bench.dataset import mix_specs
    from core import origin
    from jobs import services

    entries = _entries(mix_specs(n, datetime.now(UTC), random.Random(23)))
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as file:
        json.dump(entries, file)
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "manage.py", "import_jobs", file.name],
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": database_url},
        capture_output=True,
        text=True,
        check=False,
    )
    seconds = time.perf_counter() - started
    Path(file.name).unlink()
    if done.returncode != 0:
        raise RuntimeError(f"import_jobs failed: {done.stderr[-2000:]}")
    # The baseline: the same kind of entries, one service call each, as import_jobs did before.
    one_by_one = [{**entry, "id": f"one-{entry['id']}"} for entry in entries[:sample]]
    started = time.perf_counter()
    with origin.origin("import"):
        for entry in one_by_one:
            services.job_create(data=entry)
    baseline_seconds = time.perf_counter() - started
    return {
        "jobs": n,
        "seconds": seconds,
        "jobs_per_s": n / seconds,
        "summary": done.stdout.strip().splitlines()[-1],
        "baseline_jobs": sample,
        "baseline_jobs_per_s": sample / baseline_seconds,
        "seconds_for_100k": 100_000 / (n / seconds),
    }


def _api_stage(n: int) -> dict[str, Any]:
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client
    from rest_framework.authtoken.models import Token

    user = get_user_model().objects.create_superuser("bench", password=None)
    token = Token.objects.create(user=user).key
    client = Client(HTTP_AUTHORIZATION=f"Token {token}", HTTP_HOST="localhost")
    bodies = _entries_for_api(n)
    client.post("/api/jobs/", {**bodies[0], "id": "warm"}, content_type="application/json")
    durations = []
    started = time.perf_counter()
    for body in bodies:
        began = time.perf_counter()
        response = client.post("/api/jobs/", body, content_type="application/json")
        durations.append(time.perf_counter() - began)
        if response.status_code != 201:
            raise RuntimeError(f"POST /api/jobs/ answered {response.status_code}: {response.content[:500]!r}")
    seconds = time.perf_counter() - started
    statements: list[str] = []

    def count(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        statements.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(count):  # every statement of the request, auth included
        response = client.post("/api/jobs/", {**bodies[0], "id": "counted"}, content_type="application/json")
    if response.status_code != 201:
        raise RuntimeError(f"POST /api/jobs/ answered {response.status_code}: {response.content[:500]!r}")
    bulk = [{**body, "id": f"bulk-{body['id']}"} for body in _entries_for_api(min(10 * n, 10_000))]
    started = time.perf_counter()
    response = client.post("/api/jobs/import/", bulk, content_type="application/json")
    bulk_seconds = time.perf_counter() - started
    if response.status_code != 200 or response.json()["created"] != len(bulk):
        raise RuntimeError(f"POST /api/jobs/import/ answered {response.status_code}: {response.content[:500]!r}")
    return {
        "creates": n,
        "creates_per_s": n / seconds,
        "create_ms_median": statistics.median(durations) * 1000,
        "statements_per_create": len(statements),
        "bulk_jobs": len(bulk),
        "bulk_jobs_per_s": len(bulk) / bulk_seconds,
    }


def _runs_stage(count: int) -> dict[str, Any]:
    from django.db import connection
    from django.test import Client

    from core.pagination import LimitOffsetPagination
    from jobs.models import Job

    jobs = [f"runs-{i:03d}" for i in range(100)]
    Job.objects.bulk_create(
        [Job(id=job_id, name=job_id, kind="http", url="http://127.0.0.1:9/", trigger="manual") for job_id in jobs]
    )
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO runs_run (job_id, trigger, attempt, status, queued_at, started_at, finished_at,
                                  duration_ms, target, response_body, output, overrides, log_output, error,
                                  traceback, worker, celery_task_id, cancelled_by, scheduled_for)
            SELECT 'runs-' || lpad((n %% 100)::text, 3, '0'), 'scheduled', 1,
                   CASE WHEN n %% 10 = 0 THEN 'failed' ELSE 'success' END,
                   now() - make_interval(secs => (%s - n)), now() - make_interval(secs => (%s - n)),
                   now() - make_interval(secs => (%s - n)), 120, 'GET http://127.0.0.1:9/', '', '', '{}', '', '',
                   '', 'bench', '', '', now() - make_interval(secs => (%s - n))
            FROM generate_series(1, %s) AS n
            """,
            [count] * 4 + [count],
        )
        cursor.execute("ANALYZE runs_run")
    made_seconds = time.perf_counter() - started
    from django.contrib.auth import get_user_model
    from rest_framework.authtoken.models import Token

    user = get_user_model().objects.create_superuser("reader", password=None)
    client = Client(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}", HTTP_HOST="localhost")
    deep_cursor = client.get(f"/api/runs/?cursor=&limit=50&job={jobs[7]}").json()["next"]
    cases: dict[str, str] = {
        "first page": "/api/runs/?limit=50",
        "first page, one status": "/api/runs/?limit=50&status=failed",
        "offset 10,000": "/api/runs/?limit=50&offset=10000",
        "cursor, first page": "/api/runs/?cursor=&limit=50",
        "cursor, a job's second page": deep_cursor.split("localhost", 1)[-1],
        "a job's runs": f"/api/jobs/{jobs[3]}/runs/?limit=50",
    }
    latency = {name: _latency(functools.partial(_get_ok, client, url)) for name, url in cases.items()}

    # The baseline: the first page as the runs list gave it before, with its exact count.
    def exact_count() -> None:
        from runs.models import Run

        paginator = LimitOffsetPagination()
        list(Run.objects.order_by("-id")[:50])
        paginator.count = Run.objects.count()

    latency["baseline: first page with an exact count"] = _latency(exact_count)
    return {"runs": count, "seconds_to_write": made_seconds, "latency_ms": latency}


def _retention_stage() -> dict[str, Any]:
    from runs.models import Run
    from runs.retention import delete_old_runs

    total = Run.objects.count()
    newest = Run.objects.order_by("-queued_at").values_list("queued_at", flat=True).first()
    oldest = Run.objects.order_by("queued_at").values_list("queued_at", flat=True).first()
    if newest is None or oldest is None:
        return {}
    middle = oldest + (newest - oldest) / 2
    age = datetime.now(UTC) - middle
    batches: list[float] = []
    last = time.perf_counter()

    def on_batch(count: int) -> None:
        nonlocal last
        now = time.perf_counter()
        batches.append(now - last)
        last = now

    started = time.perf_counter()
    deleted = delete_old_runs(older_than=age, on_batch=on_batch)
    seconds = time.perf_counter() - started
    return {
        "runs_before": total,
        "deleted": deleted,
        "seconds": seconds,
        "seconds_per_million": seconds / max(deleted, 1) * 1_000_000,
        "longest_batch_s": max(batches) if batches else None,
    }


# --- helpers -----------------------------------------------------------------------------------


def _entries(specs: Any) -> list[dict[str, Any]]:
    entries = []
    for spec in specs:
        entry: dict[str, Any] = {"id": spec.id, "url": "http://127.0.0.1:9/", "timezone": spec.timezone}
        if spec.cron:
            entry["cron"] = spec.cron
        elif spec.interval_seconds:
            entry["interval_seconds"] = spec.interval_seconds
        elif spec.run_at:
            entry["run_at"] = spec.run_at.isoformat()
        entries.append(entry)
    return entries


def _entries_for_api(n: int) -> list[dict[str, Any]]:
    from bench.dataset import mix_specs

    return [
        {**entry, "id": f"api-{entry['id']}"} for entry in _entries(mix_specs(n, datetime.now(UTC), random.Random(5)))
    ]


def _latency(call: Callable[[], None], times: int = 200) -> dict[str, float]:
    for _ in range(10):
        call()
    taken = []
    for _ in range(times):
        began = time.perf_counter()
        call()
        taken.append((time.perf_counter() - began) * 1000)
    taken.sort()
    return {"p50": statistics.median(taken), "p99": taken[int(len(taken) * 0.99) - 1]}


def _get_ok(client: Any, url: str) -> None:
    _ok(client.get(url))


def _ok(response: Any) -> None:
    if response.status_code != 200:
        raise RuntimeError(f"{response.status_code}: {response.content[:300]!r}")


def _empty_jobs() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE jobs_job, jobs_jobversion, audit_auditentry, django_celery_beat_periodictask,"
            " django_celery_beat_crontabschedule, django_celery_beat_intervalschedule,"
            " django_celery_beat_clockedschedule, runs_run CASCADE"
        )


def _recreate(server: str) -> None:
    _drop(server)
    _admin(server, f'CREATE DATABASE "{DATABASE}"')


def _drop(server: str) -> None:
    _admin(server, f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')


def _admin(server: str, sql: str) -> None:
    import psycopg

    dsn = urlunsplit(urlsplit(server)._replace(scheme="postgresql", path="/postgres"))
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql)


# --- the table ------------------------------------------------------------------------------------


def print_writes(results: dict[str, Any]) -> None:
    print("\nWrite path and runs at scale (issue #23)\n")
    rows: list[tuple[str, str, str, str]] = []
    imp = results.get("import") or {}
    if imp:
        rows.append((
            f"import_jobs, {imp['jobs']:,} jobs", f"{imp['jobs_per_s']:,.0f} jobs/s ({imp['seconds']:.1f} s)",
            f"{imp['baseline_jobs_per_s']:,.0f} jobs/s one by one", f"≥ {TARGETS['import_jobs_per_s']:,.0f} jobs/s",
        ))  # fmt: skip
        rows.append(("  → 100,000 jobs", f"{imp['seconds_for_100k']:.0f} s", "", "< 60 s"))
    api = results.get("api") or {}
    if api:
        rows.append((
            "POST /api/jobs/", f"{api['creates_per_s']:,.0f} creates/s",
            f"{BEFORE['api_creates_per_s']} /s (issue)", f"≥ {TARGETS['api_creates_per_s']} /s",
        ))  # fmt: skip
        rows.append((
            "  SQL statements a create", str(api["statements_per_create"]),
            f"{BEFORE['api_statements']} (issue)", f"≤ {TARGETS['api_statements']}",
        ))  # fmt: skip
        rows.append((
            f"POST /api/jobs/import/, {api['bulk_jobs']:,} jobs", f"{api['bulk_jobs_per_s']:,.0f} jobs/s", "",
            f"≥ {TARGETS['import_jobs_per_s']:,.0f} jobs/s",
        ))  # fmt: skip
    runs = results.get("runs") or {}
    for name, figures in (runs.get("latency_ms") or {}).items():
        rows.append((
            f"runs list at {runs['runs']:,} runs: {name}", f"p50 {figures['p50']:.1f} ms, p99 {figures['p99']:.1f} ms",
            "", "" if name.startswith("baseline") else f"p99 < {TARGETS['runs_p99_ms']} ms",
        ))  # fmt: skip
    ret = results.get("retention") or {}
    if ret:
        rows.append((
            f"retention, {ret['deleted']:,} runs deleted", f"{ret['seconds']:.1f} s "
            f"({ret['seconds_per_million']:.0f} s a million; longest batch {ret['longest_batch_s'] or 0:.2f} s)",
            "", f"< {TARGETS['retention_s_per_million']} s a million",
        ))  # fmt: skip
    widths = [max(len(row[i]) for row in rows) for i in range(4)] if rows else [0] * 4
    header = ("stage", "measured", "baseline", "target")
    widths = [max(w, len(h)) for w, h in zip(widths, header, strict=True)]
    for row in (header, *rows):
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--import-jobs", type=int, default=20_000, help="jobs in the import stage")
    parser.add_argument("--api-jobs", type=int, default=1_000, help="POST /api/jobs/ creates, one at a time")
    parser.add_argument("--runs", type=int, default=2_000_000, help="runs written for the runs list stage")
    parser.add_argument("--baseline-sample", type=int, default=1_000, help="imports one by one, for the baseline")
    args = parser.parse_args(argv)
    run_stages(
        import_jobs=args.import_jobs, api_jobs=args.api_jobs, runs=args.runs, baseline_sample=args.baseline_sample
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
