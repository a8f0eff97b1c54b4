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
- ``api``: ``POST /api/jobs/`` as production serves it: a real gunicorn (``gunicorn.conf.py``) with
  one worker process and its threads (``WEB_THREADS``, 4), started here and stopped by its PID,
  driven by ``--api-clients`` concurrent HTTP clients (``bench.http_clients``: threads of another
  process, keep-alive, token auth): creates a second, p50 and p99 latency, the worker's CPU a
  create (from /proc: what one process serves at most on a free core). Beside it, the same
  creates one at a time in this process (Django's test client: no network, one web process's
  work), with the CPU a create took in this thread, and the SQL statements a create; and the
  bulk endpoint ``POST /api/jobs/import/`` in requests of 10,000. Baseline: the issue's measure
  before (63 creates a second, 33 statements a create; the code that did that is gone).
- ``runs``: R runs of 1,000 jobs (``write_runs``: a realistic mix of statuses, triggers and times,
  written by ``INSERT … SELECT generate_series`` with the indexes built after), then the latency
  (p50, p99 of 200 requests; 20 for a list slower than half a second) of the lists people ask for
  (``runs_list_cases``: limit/offset as existing clients page, the cursor from the top and from
  halfway down, filtered by status, trigger, job and time range: a closed day 60 days ago, the
  last 30 days). Baselines, same data: the first page with an exact count (the paginator the runs
  list had before); the closed day 60 days ago without its id range (``runs.filters.RunFilter``,
  as before it).
- ``retention``: ``runs.retention.delete_old_runs`` deleting the oldest 1,000,000 runs (or R/2),
  in batches; and the longest a batch held its locks. Baseline: the measure before (151 s a
  million, job by job; that code is gone).

``--writes-parts runs,retention`` runs only some stages; ``--writes-database`` names the database.

Numbers are also written to ``var/bench/writes-*.json``. Quote medians and ratios from one run:
the machine is shared.
"""

from __future__ import annotations

import functools
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from bench.probe import CpuMeter, processes_of_user

ROOT = Path(__file__).resolve().parents[1]
# Its own database, named after CRONTASK_BENCH_DATABASE (bench.db) so two benchmarks can share a server.
DATABASE = os.environ.get("CRONTASK_BENCH_DATABASE", "crontask_bench") + "_writes"
TARGETS = {
    "import_jobs_per_s": 100_000 / 60,  # 100,000 jobs in under 60 s
    "api_creates_per_s": 200,
    "api_statements": 10,
    "runs_p99_ms": 50,
    "retention_s_per_million": 60,
}
BEFORE = {
    "api_creates_per_s": 63, "api_statements": 33, "import_ms_per_job": 13.2,  # the measures
    "retention_s_per_million": 151,  # job by job, 5,000 ids a statement as placeholders (measured before, 1M runs)
}  # fmt: skip


PARTS = ("import", "api", "runs", "retention")


def run_stages(
    *,
    import_jobs: int,
    api_jobs: int,
    runs: int,
    baseline_sample: int,
    parts: tuple[str, ...] = PARTS,
    database: str = DATABASE,
    api_clients: int = 8,
) -> dict[str, Any]:
    """The stages (``parts`` of them; retention needs runs), in a database made for them on
    ``DATABASE_URL``'s server, named ``database``; returns the figures."""
    server = os.environ.get("DATABASE_URL") or "postgres://postgres@127.0.0.1:5432/postgres"
    work = urlunsplit(urlsplit(server)._replace(path=f"/{database}"))
    _recreate(server, database)
    os.environ["DATABASE_URL"] = work
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "crontask.settings")
    os.environ.setdefault("CELERY_BROKER_URL", "memory://")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    results: dict[str, Any] = {"started": datetime.now(UTC).isoformat()}
    try:
        if "import" in parts:
            results["import"] = _import_stage(import_jobs, baseline_sample, work)
            _empty_jobs()
        if "api" in parts:
            results["api"] = _api_stage(api_jobs, api_clients)
            _empty_jobs()
        if "runs" in parts:
            results["runs"] = _runs_stage(runs)
            if "retention" in parts:
                results["retention"] = _retention_stage()
    finally:
        from django.db import connections

        connections.close_all()
        _drop(server, database)
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


def _api_stage(n: int, clients: int = 8) -> dict[str, Any]:
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client
    from rest_framework.authtoken.models import Token

    user = get_user_model().objects.create_superuser("bench", password=None)
    token = Token.objects.create(user=user).key
    client = Client(HTTP_AUTHORIZATION=f"Token {token}", HTTP_HOST="localhost")
    bodies = _entries_for_api(n)
    client.post("/api/jobs/", {**bodies[0], "id": "warm"}, content_type="application/json")
    durations, cpu = [], []
    started = time.perf_counter()
    for body in bodies:
        began, cpu_began = time.perf_counter(), time.thread_time()
        response = client.post("/api/jobs/", body, content_type="application/json")
        durations.append(time.perf_counter() - began)
        cpu.append(time.thread_time() - cpu_began)  # this thread's: the request's, the test client's
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
    served = _gunicorn_creates([{**body, "id": f"http-{body['id']}"} for body in bodies], token, clients)
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
        "create_cpu_ms_median": statistics.median(cpu) * 1000,
        "statements_per_create": len(statements),
        "gunicorn": served,
        "bulk_jobs": len(bulk),
        "bulk_jobs_per_s": len(bulk) / bulk_seconds,
    }


def _gunicorn_creates(bodies: list[dict[str, Any]], token: str, clients: int) -> dict[str, Any]:
    """``bodies`` POSTed to a gunicorn started here (``gunicorn.conf.py``, one worker process, its
    threads as configured) by ``clients`` threads of another process (``bench.http_clients``);
    the gunicorn is stopped by its PID at the end. Creates a second, p50 and p99 latency in ms."""
    from django.conf import settings

    with socket.socket() as probe:  # a free port
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {
        **os.environ,
        "WEB_CONCURRENCY": "1",
        "PORT": str(port),
        "SECRET_KEY": os.environ.get("SECRET_KEY") or settings.SECRET_KEY,
        "PYTHONPATH": str(ROOT),
    }
    # gunicorn's own log in a file (a pipe nobody reads could fill and stop it)
    with tempfile.TemporaryFile("w+") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "crontask.wsgi"],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=log, text=True,
        )  # fmt: skip
        try:
            _wait_until_served(server, log, f"http://127.0.0.1:{port}/api/health/", token)
            workers = _children(server.pid)
            cpu_before = _cpu_seconds(workers)
            meter = CpuMeter({"postgres": lambda: processes_of_user("postgres")})
            figures = _drive(f"http://127.0.0.1:{port}/api/jobs/", token, bodies, clients, env)
            used = meter.since_start()
            cpu_after = _cpu_seconds(workers)
            cpu = cpu_after - cpu_before if cpu_after is not None and cpu_before is not None else None
        finally:
            os.kill(server.pid, signal.SIGTERM)  # the gunicorn master: it stops its worker
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.kill(server.pid, signal.SIGKILL)
                server.wait()
    taken = sorted(figures["latencies_ms"])
    requests = figures["creates"] + figures["warm_requests"]
    return {
        "creates": figures["creates"],
        "clients": clients,
        "threads": int(os.environ.get("WEB_THREADS") or 4),
        "creates_per_s": figures["creates"] / figures["seconds"],
        "p50_ms": statistics.median(taken),
        "p99_ms": taken[max(int(len(taken) * 0.99) - 1, 0)],
        # The worker's CPU a request (warm-ups included): what one process can do at most on a free core.
        "worker_cpu_ms": cpu / requests * 1000 if cpu is not None else None,
        # Where the rest of the machine's goes, a request: all of PostgreSQL's processes, and the
        # clients' (a timed create), which share the machine's cores with the web process.
        "postgres_cpu_ms": used["postgres"] / requests * 1000,
        "clients_cpu_ms": figures["cpu_seconds"] / figures["creates"] * 1000,
        "machine_cpu_ms": used["machine"] / requests * 1000,
    }


def _children(pid: int) -> list[int]:
    """The processes ``pid`` started (gunicorn's worker), from /proc; none where there is no /proc."""
    try:
        return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _cpu_seconds(pids: list[int]) -> float | None:
    """User and system CPU seconds of these processes so far (Linux's /proc); None without them."""
    if not pids:
        return None
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
    return total / ticks


def _drive(url: str, token: str, bodies: list[dict[str, Any]], clients: int, env: dict[str, str]) -> dict[str, Any]:
    """``bench.http_clients`` in a process of its own; its figures."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as file:
        json.dump(bodies, file)
    done = subprocess.run(
        [sys.executable, "-m", "bench.http_clients", url, token, file.name, str(clients)],
        cwd=ROOT, env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    Path(file.name).unlink()
    if done.returncode != 0:
        raise RuntimeError(f"the HTTP clients failed: {(done.stderr or done.stdout)[-2000:]}")
    return json.loads(done.stdout)


def _wait_until_served(server: subprocess.Popen[str], log: Any, url: str, token: str, seconds: float = 60) -> None:
    import requests

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if server.poll() is not None:
            log.seek(0)
            raise RuntimeError(f"gunicorn ended ({server.returncode}): {log.read()[-2000:]}")
        try:
            requests.get(url, headers={"Authorization": f"Token {token}"}, timeout=5)
            return  # any answer: the worker is up
        except requests.ConnectionError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"gunicorn did not answer {url} in {seconds:.0f} s")


RUN_JOBS = 1000  # the runs stage's jobs: 10 busy ones with a quarter of the runs, 990 others


def write_runs(count: int) -> float:
    """Write ``count`` runs of ``RUN_JOBS`` jobs, oldest first, one a second up to now; returns the seconds.

    A realistic mix, the same at every size: a quarter of the runs from 10 busy jobs, the rest
    spread over 990; 85% success and the rest failed, timed out, skipped, cancelled or lost (the
    last few queued or running); 90% scheduled, 5% manual, 4% retries (``retry_of`` an earlier
    run), 1% dependency runs (``upstream_run`` an earlier run). One ``INSERT … SELECT
    generate_series`` with the table's indexes and constraints dropped, then put back as they were
    (a row at a time, maintaining nine indexes and three foreign keys, 10,000,000 runs take most of
    an hour on 2 cores; this is minutes).
    """
    from django.db import connection

    from jobs.models import Job

    jobs = [f"runs-{i:04d}" for i in range(RUN_JOBS)]
    Job.objects.bulk_create(
        [Job(id=job_id, name=job_id, kind="http", url="http://127.0.0.1:9/", trigger="manual") for job_id in jobs]
    )
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute("SET maintenance_work_mem = '512MB'")
        cursor.execute(
            "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint"
            " WHERE conrelid = 'runs_run'::regclass AND contype IN ('u', 'f', 'c')"
        )
        constraints = cursor.fetchall()
        cursor.execute(
            "SELECT indexrelid::regclass::text, pg_get_indexdef(indexrelid) FROM pg_index"
            " WHERE indrelid = 'runs_run'::regclass AND NOT indisprimary"
            " AND indexrelid NOT IN (SELECT conindid FROM pg_constraint WHERE conrelid = 'runs_run'::regclass)"
        )
        indexes = cursor.fetchall()
        for name, _definition in constraints:
            cursor.execute(f'ALTER TABLE runs_run DROP CONSTRAINT "{name}"')
        for name, _definition in indexes:
            cursor.execute(f"DROP INDEX {name}")
        cursor.execute("SELECT coalesce(max(id), 0) FROM runs_run")
        base = cursor.fetchone()[0]
        cursor.execute(
            """
            INSERT INTO runs_run (id, job_id, trigger, attempt, retry_of_id, upstream_run_id, status, queued_at,
                                  sent_at, started_at, finished_at, duration_ms, target, status_code,
                                  response_body, output, overrides, log_output, error, traceback, worker,
                                  celery_task_id, cancelled_by, cancelled_at, scheduled_for)
            SELECT %(base)s + n, 'runs-' || lpad(j::text, 4, '0'), tr, CASE WHEN tr = 'retry' THEN 2 ELSE 1 END,
                   CASE WHEN tr = 'retry' AND n > 1 THEN %(base)s + n - 1 END,
                   CASE WHEN tr = 'dependency' AND n > 3 THEN %(base)s + n - 3 END,
                   st, at, at, CASE WHEN st <> 'queued' THEN at + interval '0.2 s' END,
                   CASE WHEN st NOT IN ('queued', 'running') THEN at + make_interval(secs => ms / 1000.0) END,
                   CASE WHEN st NOT IN ('queued', 'running') THEN ms END,
                   'GET http://127.0.0.1:9/', CASE st WHEN 'success' THEN 200 WHEN 'failed' THEN 500 END,
                   CASE st WHEN 'success' THEN '{"ok": true}' WHEN 'failed' THEN 'Internal Server Error' ELSE '' END,
                   '', '{}', '', CASE st WHEN 'failed' THEN 'HTTP 500' WHEN 'timeout' THEN 'Timed out after 30 s'
                   WHEN 'lost' THEN 'The worker went away' ELSE '' END, '',
                   CASE WHEN st <> 'queued' THEN 'celery@worker-' || (n %% 4) ELSE '' END, md5(n::text),
                   CASE WHEN st = 'cancelled' THEN 'admin' ELSE '' END,
                   CASE WHEN st = 'cancelled' THEN at + interval '1 s' END,
                   CASE WHEN tr IN ('scheduled', 'retry') THEN date_trunc('second', at) END
            FROM (
                SELECT n, at,
                       CASE WHEN n %% 4 = 0 THEN n %% 10 ELSE 10 + (n * 7919) %% %(others)s END AS j,
                       CASE WHEN n > %(count)s - 20 THEN CASE WHEN n %% 2 = 0 THEN 'running' ELSE 'queued' END
                            ELSE CASE WHEN r < 85 THEN 'success' WHEN r < 93 THEN 'failed' WHEN r < 95 THEN 'timeout'
                                      WHEN r < 97 THEN 'skipped' WHEN r < 98 THEN 'cancelled' WHEN r < 99 THEN 'lost'
                                      ELSE 'success' END END AS st,
                       CASE WHEN t < 90 THEN 'scheduled' WHEN t < 95 THEN 'manual' WHEN t < 99 THEN 'retry'
                            ELSE 'dependency' END AS tr,
                       50 + (n * 31) %% 5000 AS ms
                FROM (
                    SELECT n, now() - make_interval(secs => %(count)s - n) AS at, (n * 37) %% 100 AS r,
                           (n * 13 + n / 100) %% 100 AS t
                    FROM generate_series(1::bigint, %(count)s) AS n
                ) AS numbered
            ) AS runs
            """,
            {"base": base, "count": count, "others": RUN_JOBS - 10},
        )
        cursor.execute("SELECT setval('runs_run_id_seq', %s)", [base + count])
        for _name, definition in indexes:
            cursor.execute(definition)
        for name, definition in constraints:
            cursor.execute(f'ALTER TABLE runs_run ADD CONSTRAINT "{name}" {definition}')
        cursor.execute("VACUUM ANALYZE runs_run")
    return time.perf_counter() - started


def runs_list_cases(count: int) -> dict[str, str]:
    """The runs lists people ask for, by the URL of a 50-run page, at ``count`` runs (``write_runs``'s).

    As existing clients send them (``limit``/``offset``, with the capped count), and with the
    cursor, from the top and from halfway down the feed (a cursor a reader reaches by paging),
    filtered as people filter: a status, a trigger, a job, a time range, and these combined.
    """
    from core.pagination import _cursor
    from runs.models import Run

    newest = Run.objects.order_by("-id").values_list("id", "started_at").first()
    assert newest is not None
    assert newest[1] is not None
    halfway = _cursor(newest[0] - count // 2, False)
    day_start = (newest[1] - timedelta(days=60)).replace(microsecond=0)
    day = f"started_after={day_start.isoformat()}&started_before={(day_start + timedelta(days=1)).isoformat()}"
    day = day.replace("+", "%2B")
    month = (  # closed, and most of the recent runs: a wide window
        f"started_after={(newest[1] - timedelta(days=30)).replace(microsecond=0).isoformat()}"
        f"&started_before={(newest[1] + timedelta(days=1)).replace(microsecond=0).isoformat()}"
    ).replace("+", "%2B")
    # write_runs: the busy jobs are those of n % 10 for n % 4 == 0, the even ones (runs-0003 has no runs)
    busy, other = "runs-0002", f"runs-{RUN_JOBS // 2:04d}"
    return {
        "first page": "/api/runs/?limit=50",
        "first page, status=failed": "/api/runs/?limit=50&status=failed",
        "first page, trigger=dependency (1%)": "/api/runs/?limit=50&trigger=dependency",
        "first page, one day 60 days ago": f"/api/runs/?limit=50&{day}",
        "offset 10,000": "/api/runs/?limit=50&offset=10000",
        "a busy job's runs": f"/api/jobs/{busy}/runs/?limit=50",
        "another job's runs": f"/api/jobs/{other}/runs/?limit=50",
        "cursor: first page": "/api/runs/?cursor=&limit=50",
        "cursor: halfway": f"/api/runs/?cursor={halfway}&limit=50",
        "cursor: halfway, status=lost (1%)": f"/api/runs/?cursor={halfway}&limit=50&status=lost",
        "cursor: halfway, trigger=dependency (1%)": f"/api/runs/?cursor={halfway}&limit=50&trigger=dependency",
        "cursor: halfway, job+status=failed": f"/api/runs/?cursor={halfway}&limit=50&job={other}&status=failed",
        "cursor: one day 60 days ago": f"/api/runs/?cursor=&limit=50&{day}",
        "cursor: one day 60 days ago, status=failed": f"/api/runs/?cursor=&limit=50&status=failed&{day}",
        "cursor: one day 60 days ago, status=lost (1%)": f"/api/runs/?cursor=&limit=50&status=lost&{day}",
        "cursor: one day 60 days ago, oldest first": f"/api/runs/?cursor=&limit=50&ordering=id&{day}",
        "a job's runs, one day 60 days ago": f"/api/jobs/{busy}/runs/?limit=50&{day}",
        "first page, the last 30 days (closed, wide)": f"/api/runs/?limit=50&{month}",
        "cursor: a job's runs, halfway": f"/api/jobs/{other}/runs/?cursor={halfway}&limit=50",
        "cursor: a busy job's runs, halfway": f"/api/jobs/{busy}/runs/?cursor={halfway}&limit=50",
    }


def _runs_stage(count: int) -> dict[str, Any]:
    from django.test import Client

    from core.pagination import LimitOffsetPagination

    made_seconds = write_runs(count)
    from django.contrib.auth import get_user_model
    from rest_framework.authtoken.models import Token

    user = get_user_model().objects.create_superuser("reader", password=None)
    client = Client(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}", HTTP_HOST="localhost")
    cases = runs_list_cases(count)
    latency = {name: _latency(functools.partial(_get_ok, client, url)) for name, url in cases.items()}

    # The baseline: the first page as the runs list gave it before, with its exact count.
    def exact_count() -> None:
        from runs.models import Run

        paginator = LimitOffsetPagination()
        list(Run.objects.order_by("-id")[:50])
        paginator.count = Run.objects.count()

    latency["baseline: first page with an exact count"] = _latency(exact_count)
    # The baseline of the closed windows: the same requests as before their id range (runs.filters).
    from unittest import mock

    from runs import selectors

    with mock.patch.object(selectors, "started_window_ids", return_value=None):
        for name in ("first page, one day 60 days ago", "cursor: one day 60 days ago"):
            latency[f"baseline: {name}, no id range (before)"] = _latency(
                functools.partial(_get_ok, client, cases[name])
            )
    return {"runs": count, "seconds_to_write": made_seconds, "latency_ms": latency}


def _retention_stage(million: int = 1_000_000) -> dict[str, Any]:
    """``delete_old_runs`` (as the ``cleanup-runs`` job runs it: no keep-per-job) of the oldest
    million runs (or half of them, if fewer were written), timed, with the longest batch (what
    one transaction held its row locks for)."""
    from runs.models import Run
    from runs.retention import delete_old_runs

    total = Run.objects.count()
    oldest = Run.objects.order_by("id").values_list("id", flat=True).first()
    if oldest is None:
        return {}
    # The cutoff: the queued_at of the run a million after the oldest (write_runs: one a second).
    cutoff = Run.objects.filter(id__gte=oldest + min(million, total // 2)).order_by("id")
    cut = cutoff.values_list("queued_at", flat=True).first()
    assert cut is not None  # write_runs gives every run its queued_at
    now = datetime.now(UTC)
    batches: list[float] = []
    last = time.perf_counter()

    def on_batch(count: int) -> None:
        nonlocal last
        now = time.perf_counter()
        batches.append(now - last)
        last = now

    started = time.perf_counter()
    deleted = delete_old_runs(older_than=now - cut, now=now, on_batch=on_batch)
    seconds = time.perf_counter() - started
    return {
        "runs_before": total,
        "deleted": deleted,
        "seconds": seconds,
        "seconds_per_million": seconds / max(deleted, 1) * 1_000_000,
        "longest_batch_s": max(batches) if batches else None,
        "batches": len(batches),
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
    began = time.perf_counter()
    for _ in range(10):
        call()
    if time.perf_counter() - began > 5:  # over half a second a request: 20 are enough to say so
        times = 20
    taken = []
    for _ in range(times):
        began = time.perf_counter()
        call()
        taken.append((time.perf_counter() - began) * 1000)
    taken.sort()
    return {"p50": statistics.median(taken), "p99": taken[max(int(len(taken) * 0.99) - 1, 0)], "requests": len(taken)}


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


def _recreate(server: str, database: str) -> None:
    _drop(server, database)
    _admin(server, f'CREATE DATABASE "{database}"')


def _drop(server: str, database: str) -> None:
    _admin(server, f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


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
        served = api.get("gunicorn") or {}
        if served:
            rows.append((
                f"POST /api/jobs/, gunicorn 1 worker x {served['threads']} threads, {served['clients']} clients",
                f"{served['creates_per_s']:,.0f} creates/s "
                f"(p50 {served['p50_ms']:.1f} ms, p99 {served['p99_ms']:.1f} ms"
                + (f"; worker CPU {served['worker_cpu_ms']:.1f} ms a create" if served.get("worker_cpu_ms") else "")
                + (
                    f", PostgreSQL {served['postgres_cpu_ms']:.1f} ms, the clients {served['clients_cpu_ms']:.1f} ms,"
                    f" machine {served['machine_cpu_ms']:.1f} ms)" if "machine_cpu_ms" in served else ")"
                ),
                f"{BEFORE['api_creates_per_s']} /s (issue)", f"≥ {TARGETS['api_creates_per_s']} /s",
            ))  # fmt: skip
        rows.append((
            "POST /api/jobs/, one at a time in process", f"{api['creates_per_s']:,.0f} creates/s "
            f"(median {api['create_ms_median']:.1f} ms, CPU {api['create_cpu_ms_median']:.1f} ms)",
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
            f"{BEFORE['retention_s_per_million']} s a million (before)",
            f"< {TARGETS['retention_s_per_million']} s a million",
        ))  # fmt: skip
    widths = [max(len(row[i]) for row in rows) for i in range(4)] if rows else [0] * 4
    header = ("stage", "measured", "baseline", "target")
    widths = [max(w, len(h)) for w, h in zip(widths, header, strict=True)]
    for row in (header, *rows):
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))


def add_part_arguments(parser: Any) -> None:
    parser.add_argument(
        "--writes-parts",
        default=",".join(PARTS),
        help="writes: which of import,api,runs,retention (retention needs runs)",
    )
    parser.add_argument(
        "--writes-database",
        default=DATABASE,
        help="writes: the database made and dropped (another name to run beside another bench)",
    )
    parser.add_argument(
        "--api-clients", type=int, default=8, help="writes: concurrent HTTP clients of the gunicorn in the api stage"
    )


def parse_parts(text: str) -> tuple[str, ...]:
    parts = tuple(part.strip() for part in text.split(",") if part.strip())
    if unknown := set(parts) - set(PARTS):
        raise SystemExit(f"Unknown writes parts: {', '.join(sorted(unknown))} ({', '.join(PARTS)}).")
    return parts


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--import-jobs", type=int, default=20_000, help="jobs in the import stage")
    parser.add_argument("--api-jobs", type=int, default=1_000, help="POST /api/jobs/ creates (each way)")
    parser.add_argument("--runs", type=int, default=2_000_000, help="runs written for the runs list stage")
    parser.add_argument("--baseline-sample", type=int, default=1_000, help="imports one by one, for the baseline")
    add_part_arguments(parser)
    args = parser.parse_args(argv)
    run_stages(
        import_jobs=args.import_jobs, api_jobs=args.api_jobs, runs=args.runs, baseline_sample=args.baseline_sample,
        parts=parse_parts(args.writes_parts), database=args.writes_database, api_clients=args.api_clients,
    )  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
