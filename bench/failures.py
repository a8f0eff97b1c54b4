"""Failure modes, measured: what happens to fires, and what a user sees, when a part fails.

    bench/failures                            every scenario, about 12 minutes
    bench/failures broker-redis beat-killed   some of them (names: bench/failures --help)

Each scenario starts web, worker and beat as real processes (``tests.e2e.faults.Cluster``) on a
database of its own, with HTTP jobs firing every 5 s (four due together, one alone, one with a
misfire grace of 8 s) at a local target. It lets them run, breaks one part for real, lets it
recover, and counts per (job, scheduled_for) the fires due, the runs and how they ended, and the
calls the target received. During the fault it asks the API for a manual run and for
``/api/health/``, as a user would. The "Failure modes" table of docs/operations.md comes from this output.
Needs PostgreSQL (DATABASE_URL's server) and Redis (CELERY_BROKER_URL), and RabbitMQ for
``broker-rabbitmq``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypedDict

import requests

from tests.e2e.faults import (
    Cluster,
    RabbitVhost,
    RedisServer,
    TcpProxy,
    Terminator,
    cluster,
    fires_due,
    now,
    wait_for,
)
from tests.http_target import HttpTarget

SCHEDULES = {**{f"burst-{i}": (5, 0) for i in range(4)}, "alone": (5, 2), "graced": (5, 3)}
ENV = {"CRONTASK_LOST_GRACE_SECONDS": "20"}


@dataclass
class Fault:
    """What a scenario did: when the fault began and ended, and what the user saw meanwhile."""

    began: datetime
    ended: datetime
    seen: dict[str, Any] = field(default_factory=dict)


# A scenario's set-up: (the broker URL, what breaks and repairs the part, the clean-up, Cluster options).
class ClusterOptions(TypedDict, total=False):
    database_port: int  # the cluster reaches PostgreSQL through this port (a proxy the scenario cuts)


Setup = tuple[str, Callable[[Cluster], Fault], Callable[[], None], ClusterOptions]


def user_view(system: Cluster) -> dict[str, Any]:
    """What a user gets from the API during the fault."""
    seen: dict[str, Any] = {}
    for name, method, path in (("run-now", "post", "/api/jobs/alone/run/"), ("health", "get", "/api/health/")):
        try:
            answer = requests.request(method, system.base_url + path, headers=system.auth, timeout=15)
            seen[name] = answer.status_code
        except requests.RequestException as exc:
            seen[name] = type(exc).__name__
    return seen


def outage(stop: Callable[[], None], start: Callable[[], None], seconds: float) -> Callable[[Cluster], Fault]:
    def run(system: Cluster) -> Fault:
        stop()
        began = now()
        time.sleep(3)
        seen = user_view(system)
        time.sleep(max(0.0, seconds - (now() - began).total_seconds()))
        start()
        return Fault(began, now(), seen)

    return run


def broker_redis(tmp: Path) -> Setup:
    redis = RedisServer(tmp)
    redis.start()
    return redis.url, outage(redis.kill, redis.start, 30), redis.kill, {}


def broker_rabbitmq(tmp: Path) -> Setup:
    vhost = RabbitVhost()
    vhost.create()
    return vhost.url, outage(vhost.proxy.cut, vhost.proxy.restore, 30), vhost.delete, {}


def database_down(tmp: Path) -> Setup:
    proxy = TcpProxy(5432)
    proxy.restore()
    return _broker(), outage(proxy.cut, proxy.restore, 30), proxy.close, {"database_port": proxy.port}


def database_connections(tmp: Path) -> Setup:
    def run(system: Cluster) -> Fault:
        began = now()
        with Terminator(system.admin_dsn, system.database, every=0.2):
            time.sleep(3)
            seen = user_view(system)
            time.sleep(17)
        return Fault(began, now(), seen)

    return _broker(), run, lambda: None, {}


def process_killed(name: str, down: float) -> Callable[[Path], Setup]:
    def setup(tmp: Path) -> Setup:
        def run(system: Cluster) -> Fault:
            system.kill(name)
            began = now()
            time.sleep(3)
            seen = user_view(system)
            time.sleep(down - 3)
            system.start_one(name)
            return Fault(began, now(), seen)

        return _broker(), run, lambda: None, {}

    return setup


def two_beats(tmp: Path) -> Setup:
    def run(system: Cluster) -> Fault:
        system.start_one("beat-2")
        time.sleep(10)
        system.kill("beat")  # the leader
        began = now()
        time.sleep(20)
        return Fault(began, now(), {"leader": "beat-2" if "now the leader" in system.log("beat-2") else "none"})

    return _broker(), run, lambda: None, {}


def clock_skew(name: str, offset: float) -> Callable[[Path], Setup]:
    def setup(tmp: Path) -> Setup:
        def run(system: Cluster) -> Fault:
            system.kill(name)
            system.start_one(name, clock_offset=offset)
            began = now()
            time.sleep(30)
            return Fault(began, now(), {})

        return _broker(), run, lambda: None, {}

    return setup


def _broker() -> str:
    return os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/0")


SCENARIOS = {
    "broker-redis": ("broker down: Redis (no persistence) killed, back after 30 s", broker_redis),
    "broker-rabbitmq": ("broker down: RabbitMQ unreachable for 30 s", broker_rabbitmq),
    "database-down": ("database down: PostgreSQL unreachable for 30 s", database_down),
    "database-connections": ("database connections terminated every 0.2 s for 20 s", database_connections),
    "worker-killed": ("worker killed (SIGKILL), started again after 20 s", process_killed("worker", 20)),
    "beat-killed": ("beat killed (SIGKILL), started again after 20 s", process_killed("beat", 20)),
    "two-beats": ("two beats, the leader killed (SIGKILL)", two_beats),
    "worker-clock-ahead": ("the worker's clock 2 s ahead of beat's", clock_skew("worker", 2.0)),
    "beat-clock-ahead": ("beat's clock 2 s ahead of the worker's", clock_skew("beat", 2.0)),
}


def measure(name: str, tmp: Path) -> dict[str, Any]:
    title, setup = SCENARIOS[name]
    broker, scenario, teardown, options = setup(tmp)
    try:
        port = options.get("database_port")
        with HttpTarget() as target, cluster(tmp, broker, database_port=port, env=ENV) as system:
            jobs: dict[str, dict[str, object]] = {
                job_id: {"cron": f"{o}/{p} * * * * *", "url": f"{target.url}/ok/{job_id}"}
                for job_id, (p, o) in SCHEDULES.items()
            }
            jobs["graced"]["misfire_grace_seconds"] = 8
            system.create_jobs(jobs)
            system.start()
            assert wait_for(lambda: target.hits["/ok/alone"] >= 1, 30), system.log("worker")[-2000:]
            time.sleep(5)
            fault = scenario(system)
            time.sleep(25)  # recovery, and the reaper's grace (20 s) for what was lost
            return {"title": title, **_count(system, target, fault)}
    finally:
        teardown()


def _count(system: Cluster, target: HttpTarget, fault: Fault) -> dict[str, Any]:
    due = fires_due(SCHEDULES, fault.began - timedelta(seconds=2), fault.ended + timedelta(seconds=5))
    rows = {
        (job_id, at): (status, error, started)
        for job_id, at, status, error, started in system.query(
            "SELECT job_id, scheduled_for, status, error, started_at FROM runs_run "
            "WHERE attempt = 1 AND scheduled_for IS NOT NULL"
        )
    }
    calls: Counter[tuple[str, datetime]] = Counter()
    arrived = []  # when each call of a fire due during the fault reached the target, by its (real) clock
    for (_, _, headers, _), (when, _) in zip(list(target.requests), list(target.arrivals), strict=False):
        if "X-Crontask-Scheduled-For" in headers:
            fire = datetime.fromisoformat(headers["X-Crontask-Scheduled-For"])
            calls[(headers["X-Crontask-Job-Id"], fire)] += 1
            if fault.began <= fire <= fault.ended:
                arrived.append(when - fire.timestamp())
    outcome: Counter[str] = Counter()
    for job_id, at in due:
        status, error, _ = rows.get((job_id, at), ("no run", "", None))
        if status == "skipped":
            reason = "missed" if error.startswith("Missed") else "misfire" if error.startswith("Misfire") else error
            status = f"skipped ({reason})"
        outcome[status] += 1
    doubled = sum(1 for n in calls.values() if n > 1)
    after = [started for (_, at), (status, _, started) in rows.items() if started and started > fault.ended]
    late = [
        (started - at).total_seconds()
        for (_, at), (status, _, started) in rows.items()
        if status == "success" and fault.began <= at <= fault.ended
    ]
    return {
        "exited": system.exited(),
        "due": len(due),
        "outcome": dict(outcome),
        "doubled calls": doubled,
        "first start after the fault (s)": round((min(after) - fault.ended).total_seconds(), 1) if after else None,
        "start lateness p50/max during the fault (s)": _p50_max(late),
        "call reached the target p50/max after its time, by the real clock (s)": _p50_max(arrived),
        "seen during the fault": fault.seen,
        "unfinished": sum(1 for key in due if rows.get(key, ("",))[0] in ("queued", "running")),
    }


def _p50_max(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} / {max(values):.2f}" if values else "-"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("scenarios", nargs="*", metavar="SCENARIO", help=f"default: all of {', '.join(SCENARIOS)}")
    names = parser.parse_args(argv).scenarios or list(SCENARIOS)
    unknown = set(names) - SCENARIOS.keys()
    if unknown:
        parser.error(f"unknown scenario(s): {', '.join(sorted(unknown))}")
    results = {}
    for name in names:
        print(f"== {name}: {SCENARIOS[name][0]}", flush=True)
        results[name] = measure(name, Path(tempfile.mkdtemp(prefix=f"crontask-{name}-")))
        for key, value in results[name].items():
            print(f"   {key}: {value}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
