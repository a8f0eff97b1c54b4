"""What alert rules cost each run that ends, measured: a run's time and queries with the rules
against the same run with none.

    bench/alerts                    300 timed fires of each case, under a minute
    bench/alerts --repeat 100       fewer samples
    bench/alerts --database NAME    the database it creates and drops (default crontask_bench_alerts)

Each fire is the worker's task run in process (``runs.tasks.execute_job.apply``, a distinct
``scheduled_for`` each time) for an HTTP job that calls a local server (``tests.http_target``),
on PostgreSQL (``DATABASE_URL``'s server): the claim, the call, the outcome and, in the outcome's
transaction, ``alerts.evaluation.run_ended``. The cases, one job each:

- A, the baseline: a job that succeeds, no rule at all;
- B: a job that succeeds, a ``failed`` and a ``no_success`` rule watching every job (a success
  looks for open failure incidents to close);
- C: a job that fails (HTTP 500), a ``failed`` rule watching every job: its incident is open, so
  each run adds an occurrence and notifies no one;
- D: a job that succeeds, ``slow`` with no threshold (reads the last 50 successful durations) and
  ``consecutive_failures`` at 3;
- A': a job that fails, no rule: C's run without the rule, to tell the rule's cost from the
  failure's.

Only one case's rules are enabled while its fires run (the rules' cache is loaded again before
them, untimed), so "every job" means every job and A has no rule. After 20 warm-up fires each,
the cases take turns in rounds (A B C D A' A B C D A' ...) so that the machine's noise falls on
all of them alike. Then a short pass counts each case's queries per fire
(``CaptureQueriesContext``), and names those a case makes beyond A's, with their time.

Notifications are recorded but not queued: ``alerts.delivery.queue`` is replaced by a no-op (and
the broker is ``memory://``), so nothing reaches a broker or the channel; in C only the first run
notifies anyway. Jobs have no retries. It prints the median and p95 of each case, its queries per
fire and its median's ratio to A's, and writes them to ``var/bench/alerts-*.json``.
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import os
import re
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from tests.http_target import HttpTarget

ROOT = Path(__file__).resolve().parents[1]
WARMUP = 20
ROUNDS = 10
QUERY_FIRES = 10  # fires per case in the pass that counts queries
BASELINE = "A"
# Far enough in the past that no fire waits for its time; the jobs have no misfire grace.
BASE_TIME = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Case:
    key: str
    label: str
    path: str  # what the job calls on the local server
    rules: tuple[tuple[str, int | None], ...]  # (event, threshold)


CASES = (
    Case("A", "baseline: success, no rule", "/ok", ()),
    Case("B", "success; failed + no_success, every job", "/ok", (("failed", None), ("no_success", 86400))),
    Case("C", "failure (500); failed, every job, incident open", "/status/500", (("failed", None),)),
    Case("D", "success; slow (no threshold) + consecutive_failures 3", "/ok",
         (("slow", None), ("consecutive_failures", 3))),
    Case("A'", "failure (500), no rule", "/status/500", ()),
)  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=300, help="timed fires per case (default 300)")
    parser.add_argument("--database", default="crontask_bench_alerts", help="created and dropped")
    args = parser.parse_args(argv)
    if args.repeat < ROUNDS:
        parser.error(f"--repeat must be at least {ROUNDS}")
    server = os.environ.get("DATABASE_URL") or "postgres://postgres@127.0.0.1:5432/postgres"
    if not server.startswith("postgres"):
        print("The benchmark needs PostgreSQL (DATABASE_URL).", file=sys.stderr)
        return 2
    admin_dsn, work_url = _urls(server, args.database)
    _admin(admin_dsn, f'DROP DATABASE IF EXISTS "{args.database}" WITH (FORCE)')
    _admin(admin_dsn, f'CREATE DATABASE "{args.database}"')
    try:
        with HttpTarget() as target:
            results = _measure(work_url, target, args.repeat)
    finally:
        from django.db import connections

        connections.close_all()
        _admin(admin_dsn, f'DROP DATABASE IF EXISTS "{args.database}" WITH (FORCE)')
    _print(results)
    out = ROOT / "var" / "bench" / f"alerts-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(f"\nwritten to {out.relative_to(ROOT)}")
    return 0 if not results["problems"] else 1


def _urls(server: str, name: str) -> tuple[str, str]:
    parts = urlsplit(server)
    admin = urlunsplit(parts._replace(scheme="postgresql", path="/postgres"))
    return admin, urlunsplit(parts._replace(path=f"/{name}"))


def _admin(dsn: str, sql: str) -> None:
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql)


class _Errors(logging.Handler):
    """Counts what is logged at ERROR: a watcher that fails is logged, and its run stored all the
    same, so a broken evaluation would otherwise pass for a cheap one."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage()[:300])


def _measure(work_url: str, target: HttpTarget, repeat: int) -> dict[str, Any]:
    # memory://: a message sent by mistake stays in this process instead of reaching a broker.
    os.environ.update(DATABASE_URL=work_url, CELERY_BROKER_URL="memory://")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "crontask.settings")
    import django

    django.setup()
    errors = _Errors()
    logging.getLogger().addHandler(errors)
    for name in ("runs", "jobs", "alerts", "celery"):
        logging.getLogger(name).setLevel(logging.WARNING)  # not a line per run
    from django.core.management import call_command

    from alerts import delivery, evaluation, selectors, services
    from alerts.models import AlertRule, Incident, Notification
    from jobs import services as job_services
    from runs import watchers
    from runs.models import Run
    from runs.tasks import execute_job

    queued: list[int] = []

    def queue(notification_id: int, *, attempt: int) -> None:
        queued.append(notification_id)  # recorded, never sent (see the docstring)

    delivery.queue = queue
    # The time spent in the rules' watcher itself, each fire: the difference of two medians of
    # whole fires is noisier. (runs.watchers keeps the function it was given, so it is wrapped there.)
    evaluating: list[float] = []

    def timed_run_ended(run: Any, job: Any, final: bool) -> None:
        start = time.perf_counter()
        try:
            evaluation.run_ended(run, job, final)
        finally:
            evaluating.append((time.perf_counter() - start) * 1000)

    index = next(i for i, (watcher, _) in enumerate(watchers._watchers) if watcher is evaluation.run_ended)
    watchers._watchers[index] = (timed_run_ended, watchers._watchers[index][1])
    call_command("migrate", verbosity=0)
    channel = services.channel_create(data={"name": "b", "kind": "webhook", "target": f"{target.url}/hook"})
    rules: dict[str, list[int]] = {}
    for case in CASES:
        job_services.job_create(data={"id": _job_id(case), "name": case.label, "interval_seconds": 60,
                                      "url": target.url + case.path, "max_retries": 0})  # fmt: skip
        rules[case.key] = []
        for event, threshold in case.rules:
            rule = AlertRule.objects.create(name=f"{case.key} {event}", event=event, threshold=threshold, enabled=False)
            rule.channels.set([channel])
            rules[case.key].append(rule.pk)
    fires: Counter[str] = Counter()

    def fire(case: Case) -> None:
        at = BASE_TIME + timedelta(minutes=fires[case.key])
        fires[case.key] += 1
        execute_job.apply(kwargs={"job_id": _job_id(case), "scheduled_for": at.isoformat()}, throw=True)

    def use(case: Case) -> None:
        """Only ``case``'s rules enabled, and loaded into the cache before its fires."""
        AlertRule.objects.update(enabled=False)
        AlertRule.objects.filter(pk__in=rules[case.key]).update(enabled=True)
        selectors.rules_changed()
        loaded = selectors.enabled_rules()
        assert [rule.id for rule in loaded] == rules[case.key], (case.key, loaded)

    for case in CASES:
        use(case)
        for _ in range(WARMUP):
            fire(case)
    samples: dict[str, list[float]] = {case.key: [] for case in CASES}
    in_rules: dict[str, list[float]] = {case.key: [] for case in CASES}
    per_round = [repeat // ROUNDS + (1 if index < repeat % ROUNDS else 0) for index in range(ROUNDS)]
    for count in per_round:
        for case in CASES:
            use(case)
            for _ in range(count):
                evaluating.clear()
                start = time.perf_counter()
                fire(case)
                samples[case.key].append((time.perf_counter() - start) * 1000)
                in_rules[case.key] += evaluating
    queries = {}
    for case in CASES:
        use(case)
        queries[case.key] = _count_queries(functools.partial(fire, case))

    problems = [f"logged: {message}" for message in errors.messages]
    outcome: dict[str, dict[str, Any]] = {}
    for case in CASES:
        statuses = Counter(Run.objects.filter(job_id=_job_id(case)).values_list("status", flat=True))
        expected = "failed" if case.path.startswith("/status/") else "success"
        if statuses != {expected: fires[case.key]}:
            problems.append(f"{case.key}: {fires[case.key]} fires, runs {dict(statuses)}, all {expected} expected")
        incidents = list(Incident.objects.filter(job_id=_job_id(case)).values("event", "occurrences"))
        outcome[case.key] = {"fires": fires[case.key], "runs": dict(statuses), "incidents": incidents,
                             "notifications": Notification.objects.filter(job_id=_job_id(case)).count()}  # fmt: skip
    if outcome["C"]["incidents"] != [{"event": "failed", "occurrences": fires["C"]}]:
        problems.append(f"C: one failed incident of {fires['C']} occurrences expected: {outcome['C']['incidents']}")
    if outcome["C"]["notifications"] != 1:
        problems.append(f"C: one notification expected, {outcome['C']['notifications']} recorded")
    baseline = statistics.median(samples[BASELINE])
    baseline_sql = Counter(queries[BASELINE]["shapes"])
    cases = []
    for case in CASES:
        row = _summary(samples[case.key])
        counts = queries[case.key]["counts"]
        extra = Counter(queries[case.key]["shapes"]) - baseline_sql
        times = queries[case.key]["times"]
        cases.append({
            "case": case.key, "label": case.label, "rules": [list(rule) for rule in case.rules], **row,
            "ratio_to_baseline": round(statistics.median(samples[case.key]) / baseline, 3) if baseline else None,
            # No rule watches the job: the watcher is not even called (runs.watchers asks it first).
            "run_ended_median_ms": round(statistics.median(in_rules[case.key]), 3) if in_rules[case.key] else 0.0,
            "run_ended_p95_ms": _summary(in_rules[case.key])["p95_ms"] if in_rules[case.key] else 0.0,
            "queries_per_fire": statistics.median(counts), "queries_min_max": [min(counts), max(counts)],
            "queries_beyond_baseline": [
                {"sql": shape[:300], "per_fire": round(n / QUERY_FIRES, 2),
                 "median_ms": round(statistics.median(times[shape]), 3)}
                for shape, n in sorted(extra.items(), key=lambda item: -item[1])
            ],
            **outcome[case.key],
        })  # fmt: skip
    return {
        "measured": datetime.now(UTC).isoformat(),
        "baseline": BASELINE,
        "repeat": repeat,
        "warmup": WARMUP,
        "rounds": ROUNDS,
        "query_fires": QUERY_FIRES,
        "notifications_queued": len(queued),
        "cases": cases,
        "problems": problems,
    }


def _job_id(case: Case) -> str:
    return "bench-" + case.key.lower().replace("'", "-failing")


# A query's shape: its text with the values taken out, so the same query of two fires is one shape.
_VALUES = re.compile(r"'(?:[^']|'')*'|\b\d+(?:\.\d+)?\b")
_SAVEPOINT = re.compile(r'"s\d+_x\d+"')
_COLUMNS = re.compile(r"^SELECT .*? FROM ", re.DOTALL)


def _shape(sql: str) -> str:
    """The query without its values, and a SELECT without its list of columns (to be read)."""
    return _COLUMNS.sub("SELECT … FROM ", _SAVEPOINT.sub('"sp"', _VALUES.sub("?", sql)))


def _count_queries(fire: Callable[[], None]) -> dict[str, Any]:
    """QUERY_FIRES fires: the queries each made (counted by CaptureQueriesContext, BEGIN, COMMIT
    and savepoints included), the shape of each but BEGIN and COMMIT, and each shape's times
    (measured around the query, finer than the context's)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    counts: list[int] = []
    shapes: list[str] = []
    times: dict[str, list[float]] = {}
    for _ in range(QUERY_FIRES):
        elapsed: list[float] = []
        with _timed_queries(elapsed), CaptureQueriesContext(connection) as captured:
            fire()
        counts.append(len(captured.captured_queries))
        # Django captures BEGIN and COMMIT without executing them through the wrappers.
        executed = [query for query in captured.captured_queries if query["sql"] not in ("BEGIN", "COMMIT")]
        for query, ms in zip(executed, elapsed, strict=True):
            shapes.append(_shape(query["sql"]))
            times.setdefault(shapes[-1], []).append(ms)
    return {"counts": counts, "shapes": shapes, "times": times}


@contextmanager
def _timed_queries(elapsed: list[float]) -> Iterator[None]:
    """The time of each query executed on the default connection, in order."""
    from django.db import connection

    def wrapper(execute: Callable[..., Any], sql: str, params: Any, many: bool, context: dict[str, Any]) -> Any:
        start = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            elapsed.append((time.perf_counter() - start) * 1000)

    with connection.execute_wrapper(wrapper):
        yield


def _summary(samples: list[float]) -> dict[str, Any]:
    ordered = sorted(samples)
    return {
        "n": len(ordered),
        "median_ms": round(statistics.median(ordered), 3),
        "p95_ms": round(ordered[min(len(ordered) - 1, round(0.95 * len(ordered)) - 1)], 3),
        "max_ms": round(ordered[-1], 2),
    }


def _print(results: dict[str, Any]) -> None:
    print(f"One fire of an HTTP job, end to end in process (execute_job.apply), with the alert rules of each "
          f"case; {results['repeat']} fires per case after {results['warmup']} of warm-up, in "
          f"{results['rounds']} rounds; baseline: case {results['baseline']}")  # fmt: skip
    print("\n| case | n | median | p95 | max | median / A | in run_ended: median, p95 | queries / fire |")
    print("|---|---|---|---|---|---|---|---|")
    for r in results["cases"]:
        low, high = r["queries_min_max"]
        spread = f" ({low}-{high})" if low != high else ""
        print(f"| {r['case']}: {r['label']} | {r['n']} | {r['median_ms']:.2f} ms | {r['p95_ms']:.2f} ms | "
              f"{r['max_ms']:.2f} ms | {r['ratio_to_baseline']:.2f} | {r['run_ended_median_ms']:.3f}, "
              f"{r['run_ended_p95_ms']:.3f} ms | {r['queries_per_fire']:g}{spread} |")  # fmt: skip
    for r in results["cases"]:
        if r["queries_beyond_baseline"]:
            print(f"\n{r['case']}: queries beyond A's (per fire, median time)")
            for query in r["queries_beyond_baseline"]:
                print(f"  {query['per_fire']:g} x {query['median_ms']} ms  {query['sql'][:200]}")
    incidents = ", ".join(f"{r['case']} {r['incidents']}" for r in results["cases"])
    print(f"\nnotifications recorded and not queued: {results['notifications_queued']}; incidents: {incidents}")
    for problem in results["problems"]:
        print(f"PROBLEM: {problem}")


if __name__ == "__main__":
    sys.exit(main())
