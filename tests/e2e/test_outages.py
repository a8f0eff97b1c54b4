"""Outages, for real: the broker stopped for 30 s (Redis, and RabbitMQ), the database's connections
terminated for 20 s, under web, worker and beat processes firing jobs every 5 s.

Each test counts, per (job, scheduled_for): the fires due, the runs in the database and the calls
the target received, and asserts that no process exited, that every fire came to exactly one of
a run executed once, a run skipped with the reason (its misfire grace, or a later fire of the job
standing for it), or a run lost with the reason, that no call was made twice, and that no call the
target answered 200 was recorded as failed or lost.
"""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
import requests

from tests.e2e.faults import Ledger, RabbitVhost, RedisServer, Terminator, cluster, fires_due, now, wait_for
from tests.http_target import HttpTarget

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        not os.environ.get("DATABASE_URL", "").startswith("postgres"),
        reason="terminates PostgreSQL connections (set DATABASE_URL, CELERY_BROKER_URL)",
    ),
    pytest.mark.timeout(360),
]

# job -> (period, offset): fires at the seconds where second % period == offset.
SCHEDULES = {
    **{f"burst-{i}": (5, 0) for i in range(4)},  # due together: one execute_fires batch
    "alone": (5, 2),  # a lone execute_job
    "graced": (5, 3),  # misfire_grace_seconds 8: what the outage delays longer is skipped
    "failing": (5, 4),  # 1.5 s, then 500; retried once
}
SUCCEEDING = {job_id for job_id in SCHEDULES if job_id != "failing"}
OUTAGE = 30.0
# Settle the runs an outage leaves behind within the test: a queued run without a message is sent
# again after half of this, a run whose worker died is lost after it.
LOST_GRACE = "20"
ENV = {"CRONTASK_LOST_GRACE_SECONDS": LOST_GRACE}


def jobs(target: HttpTarget) -> dict[str, dict]:
    made: dict[str, dict[str, object]] = {}
    for job_id, (period, offset) in SCHEDULES.items():
        made[job_id] = {"cron": f"{offset}/{period} * * * * *", "url": f"{target.url}/ok/{job_id}"}
    made["graced"]["misfire_grace_seconds"] = 8
    made["failing"] |= {"url": f"{target.url}/slowfail/1.5", "max_retries": 1, "retry_backoff_seconds": 1}
    return made


def wait_until_fire(offset: float, period: int = 5) -> None:
    """Sleep until ``offset`` seconds past the next multiple of ``period`` seconds."""
    t = time.time()
    time.sleep((offset - t) % period)


def settle(system, target: HttpTarget, due, timeout: float = 90) -> Ledger:
    """The ledger of the fires due, once each has a run and none of their runs (retries included)
    is left queued or running. The jobs go on firing meanwhile, so later fires are left out: a moment
    with none of theirs under way either comes by chance (0.7 s in each 5 s) and took up to 25 s."""
    until = max(at for _, at in due)
    ledger = Ledger.read(system, target, until)

    def settled() -> bool:
        nonlocal ledger
        ledger = Ledger.read(system, target, until)
        return not ledger.unfinished() and all((job_id, at, 1) in ledger.runs for job_id, at in due)

    wait_for(settled, timeout, every=0.5)
    return ledger


def run_through_outage(system, target: HttpTarget, stop, start, *, manual: bool) -> None:
    system.start()
    assert wait_for(lambda: target.hits["/ok/alone"] >= 1, 30), system.log("worker")[-3000:]
    first = now().replace(microsecond=0) + timedelta(seconds=1)

    wait_until_fire(offset=4.5)  # the failing job's call is under way: its retry is queued in the outage
    stop()
    stopped = now()
    time.sleep(3)
    if manual:  # accepted while the broker is down, and sent when it is back
        answer = requests.post(f"{system.base_url}/api/jobs/alone/run/", timeout=30, headers=system.auth)
        assert answer.status_code == 202, answer.text
        manual_run = answer.json()["id"]
    time.sleep(OUTAGE - 3)
    start()
    back = now()

    last = back + timedelta(seconds=20)
    due = fires_due(SCHEDULES, first, last)
    time.sleep(max(0.0, (last - now()).total_seconds()))
    ledger = settle(system, target, due)

    assert system.exited() == {}, {name: system.log(name)[-3000:] for name in system.exited()}
    assert ledger.problems(due, succeeding=SUCCEEDING) == []
    # Every fire due during the outage was recorded, and each job ran once at most for them: the
    # older ones are skipped, with the reason, once the broker is back (or by their misfire grace).
    during = [(job_id, at) for job_id, at in due if stopped <= at <= back]
    assert len(during) >= 5 * len(SCHEDULES)
    counted = set(due)  # (fires before the window may have fallen due before beat had started)
    skipped = {key: error for key, (status, error) in ledger.runs.items() if status == "skipped" and key[:2] in counted}
    assert len(skipped) >= 4 * len(SCHEDULES), ledger.runs
    unexpected = {key: e for key, e in skipped.items() if not e.startswith("Missed:") and key[0] != "graced"}
    assert unexpected == {}
    outage_fires = {(job_id, at, 1) for job_id, at in during}
    ran_for_the_outage = Counter(key[0] for key in outage_fires if key in ledger.runs and key not in skipped)
    assert max(ran_for_the_outage.values(), default=0) <= 1, ran_for_the_outage
    # Retried once each, the retry queued while the broker was down included.
    assert {attempt for (job_id, _, attempt) in ledger.runs if job_id == "failing"} == {1, 2}
    # Both resumed within 10 s of the broker's return: beat sent again, the worker ran again.
    [(sent, started)] = system.query(
        "SELECT min(sent_at), min(started_at) FILTER (WHERE status <> 'skipped') FROM runs_run "
        "WHERE sent_at > %s OR started_at > %s",
        (back, back),
    )
    assert (sent - back).total_seconds() < 10, system.log("beat")[-3000:]
    assert (started - back).total_seconds() < 10, system.log("worker")[-3000:]
    if manual:
        [(status,)] = system.query("SELECT status FROM runs_run WHERE id = %s", (manual_run,))
        assert (status, ledger.manual_calls[manual_run]) == ("success", 1)


def redis_outage(tmp: Path, template: str) -> None:
    redis = RedisServer(tmp)
    redis.start()
    try:
        with HttpTarget() as target, cluster(tmp, redis.url, template=template, jobs=jobs(target), env=ENV) as system:
            run_through_outage(system, target, redis.kill, redis.start, manual=True)
    finally:
        redis.kill()


def rabbitmq_outage(tmp: Path, template: str) -> None:
    vhost = RabbitVhost()
    vhost.create()
    try:
        with HttpTarget() as target, cluster(tmp, vhost.url, template=template, jobs=jobs(target), env=ENV) as system:
            run_through_outage(system, target, vhost.proxy.cut, vhost.proxy.restore, manual=True)
    finally:
        vhost.delete()


def database_cuts(tmp: Path, template: str) -> None:
    broker = os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/0")
    with HttpTarget() as target, cluster(tmp, broker, template=template, jobs=jobs(target), env=ENV) as system:
        system.start()
        assert wait_for(lambda: target.hits["/ok/alone"] >= 1, 30), system.log("worker")[-3000:]
        first = now().replace(microsecond=0) + timedelta(seconds=1)
        with Terminator(system.admin_dsn, system.database, every=0.2) as cut:
            time.sleep(20)
        assert cut.killed > 60  # the app's connections were cut again and again
        last = now() + timedelta(seconds=10)
        due = fires_due(SCHEDULES, first, last)
        time.sleep(max(0.0, (last - now()).total_seconds()))
        ledger = settle(system, target, due)

        assert system.exited() == {}, {name: system.log(name)[-3000:] for name in system.exited()}
        assert ledger.problems(due, succeeding=SUCCEEDING) == []
        lost = [key for key, (status, _) in ledger.runs.items() if status == "lost"]
        assert lost == []  # no worker died: nothing is lost


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory, migrated_template: str) -> dict[str, BaseException | None]:
    """Each scenario's failure, or None: the three run at once, each with its own database,
    broker, processes and target. They wait on clocks, not on the CPU: one after another they
    took three and a half minutes of CI."""
    results: dict[str, BaseException | None] = {}

    def run(name: str, scenario: Callable[[Path, str], None], tmp: Path) -> None:
        try:
            scenario(tmp, migrated_template)
            results[name] = None
        except BaseException as exc:  # noqa: BLE001 - re-raised by the scenario's own test
            results[name] = exc

    scenarios = {"redis": redis_outage, "rabbitmq": rabbitmq_outage, "database": database_cuts}
    threads = [
        threading.Thread(target=run, args=(name, scenario, tmp_path_factory.mktemp(name)), name=name)
        for name, scenario in scenarios.items()
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(300)
    return {name: results.get(name, TimeoutError(f"{name} did not finish")) for name in scenarios}


def raise_if_failed(outcome: BaseException | None) -> None:
    if outcome is not None:
        raise outcome


def test_a_redis_outage_kills_no_process_and_loses_no_fire(outcomes):
    raise_if_failed(outcomes["redis"])


def test_a_rabbitmq_outage_kills_no_process_and_loses_no_fire(outcomes):
    raise_if_failed(outcomes["rabbitmq"])


def test_terminated_database_connections_lose_no_fire_and_misrecord_no_outcome(outcomes):
    raise_if_failed(outcomes["database"])
