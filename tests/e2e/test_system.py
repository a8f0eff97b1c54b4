"""The system as a user runs it: web, worker and beat as real processes, a real HTTP target.

The tests share one running system per backend and run in order; the last one stops it. The jobs
whose tests wait for the clock (cron fires, a date, a minute boundary) are made as the system
starts (``clock_jobs``), so that their time passes while the other tests run; their tests come
last and wait only for what is left of it.
"""

from __future__ import annotations

import itertools
import math
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from tests.e2e.conftest import System, stop_system

pytestmark = pytest.mark.e2e


def wait_for(predicate, timeout: float, interval: float = 0.25):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    return predicate()


def successes(system: System, job_id: str) -> list[dict]:
    return [r for r in system.runs(job_id) if r["status"] == "success" and r["status_code"] == 200]


def create(system: System, **job) -> dict:
    response = system.api("POST", "/api/jobs/", json=job)
    assert response.status_code == 201, response.text
    return response.json()


BURSTS = [f"burst{i}" for i in range(6)]
TENS_FIRES = 3  # fires of the seconds cron counted, 10 s apart


@dataclass
class ClockJobs:
    tens_first: datetime  # the seconds cron's first fire counted
    minute: datetime  # the minutely job's first minute boundary 2 s after creation
    run_at: datetime  # the date job's time
    burst_fires: list[datetime]  # the two fires of the burst jobs counted


@pytest.fixture(scope="module", autouse=True)
def clock_jobs(system: System, target) -> ClockJobs:
    start = datetime.now(UTC)
    for job_id in BURSTS:
        create(system, id=job_id, cron="*/5 * * * * *", url=f"{target.url}/{job_id}")
    burst_first = datetime.fromtimestamp(math.ceil((time.time() + 2) / 5) * 5, UTC)
    create(system, id="tens", cron="*/10 * * * * *", url=f"{target.url}/tens")
    create(system, id="minutely", cron="* * * * *", url=f"{target.url}/minutely")
    run_at = (start + timedelta(seconds=12)).replace(microsecond=0)
    create(system, id="once", run_at=run_at.isoformat(), url=f"{target.url}/once")
    return ClockJobs(
        # the seconds cron's first boundary 2 s after creation
        tens_first=datetime.fromtimestamp(math.ceil((start.timestamp() + 2) / 10) * 10, UTC),
        minute=datetime.fromtimestamp(math.ceil((time.time() + 2) / 60) * 60, UTC),  # the same 2 s
        run_at=run_at,
        burst_fires=[burst_first, burst_first + timedelta(seconds=5)],
    )


def sleep_until(when: datetime) -> None:
    time.sleep(max(0.0, (when - datetime.now(UTC)).total_seconds()))


def test_the_readme_command_started_it_and_said_where_to_log_in(system: System):
    command = system.proc.args
    assert isinstance(command, list)
    assert command[0].endswith("bin/run")
    text = system.log.read_text()
    assert f"Crontask admin: {system.base_url}/admin/  (user: admin)" in text
    assert "Generated admin password" not in text  # CRONTASK_ADMIN_PASSWORD was given


def test_an_interval_job_runs_and_pause_and_resume_stop_and_restart_it(system: System, target):
    created = time.monotonic()
    create(system, id="ping", interval_seconds=2, url=f"{target.url}/", method="GET")

    # at least 3 successful runs within 15 s, listed by the API
    assert wait_for(lambda: len(successes(system, "ping")) >= 3, timeout=15 - (time.monotonic() - created)), (
        system.runs("ping"),
        system.log.read_text()[-3000:],
    )
    fires = sorted(datetime.fromisoformat(r["scheduled_for"]) for r in successes(system, "ping"))
    assert all((b - a).total_seconds() % 2 == 0 for a, b in itertools.pairwise(fires))

    assert system.api("POST", "/api/jobs/ping/pause/").json()["status"] == "paused"
    time.sleep(1.5)  # a fire published just before the pause may still finish
    paused_count = len(system.runs("ping"))
    time.sleep(5)
    assert len(system.runs("ping")) == paused_count
    assert system.api("POST", "/api/jobs/ping/resume/").json()["status"] == "active"
    assert wait_for(lambda: len(successes(system, "ping")) > paused_count, timeout=8)
    assert system.api("DELETE", "/api/jobs/ping/").status_code == 204


def test_the_same_message_delivered_twice_through_the_broker_makes_one_run(system: System, target):
    hits_before = target.hits["/dup"]  # the target is shared by both backends
    create(system, id="dup", url=f"{target.url}/dup")  # manual: fires only when told
    system.manage(
        "shell",
        "-c",
        "from runs.tasks import execute_job\n"
        "for _ in range(2): execute_job.delay(job_id='dup', scheduled_for='2026-01-01T00:00:00+00:00')",
    )
    assert wait_for(lambda: system.runs("dup"), timeout=15)
    time.sleep(2)
    assert len(system.runs("dup")) == 1
    assert target.hits["/dup"] - hits_before == 1


def test_http_jobs_due_together_go_to_a_worker_in_one_message_and_each_fire_runs_once(
    system: System, target, clock_jobs: ClockJobs
):
    ids, fires = BURSTS, clock_jobs.burst_fires
    first = fires[0]
    sleep_until(fires[-1] + timedelta(seconds=4))

    runs = [r for job_id in ids for r in system.runs(job_id) if datetime.fromisoformat(r["scheduled_for"]) in fires]
    assert sorted((r["job"], datetime.fromisoformat(r["scheduled_for"])) for r in runs) == sorted(
        (job_id, fire) for job_id in ids for fire in fires
    ), system.log.read_text()[-3000:]
    assert all(r["status"] == "success" and r["status_code"] == 200 for r in runs)
    for fire in fires:  # one message (one Celery task) carried every call of a fire
        assert len({r["celery_task_id"] for r in runs if datetime.fromisoformat(r["scheduled_for"]) == fire}) == 1
    # Beat sends the fires ahead of their time (CRONTASK_FIRE_LEAD_MS); no call went out before it.
    calls = [at for at, path in target.arrivals if path.lstrip("/") in ids]
    assert len(calls) >= len(runs)
    assert all((at - first.timestamp()) % 5 < 2.5 for at in calls), calls  # none 2.5 s or less early
    assert all(datetime.fromisoformat(r["started_at"]) >= datetime.fromisoformat(r["scheduled_for"]) for r in runs)


def test_cron_jobs_fire_at_their_seconds_and_a_date_job_once(system: System, clock_jobs: ClockJobs):
    # a window of TENS_FIRES fires of the seconds cron, and the minutely job's first minute
    first = clock_jobs.tens_first
    window_end = first + timedelta(seconds=10 * TENS_FIRES)
    sleep_until(max(window_end, clock_jobs.minute) + timedelta(seconds=3))
    clear_of_a_minute_fire()

    tens = [r for r in system.runs("tens") if first <= datetime.fromisoformat(r["scheduled_for"]) < window_end]
    scheduled = sorted(datetime.fromisoformat(r["scheduled_for"]) for r in tens)
    assert len(tens) == TENS_FIRES, (scheduled, system.log.read_text()[-3000:])
    assert [s.second for s in scheduled] == [(first.second + 10 * i) % 60 for i in range(TENS_FIRES)]
    assert all(r["status"] == "success" for r in tens)
    late = [
        (datetime.fromisoformat(r["started_at"]) - datetime.fromisoformat(r["scheduled_for"])).total_seconds()
        for r in tens
    ]
    assert all(0 <= s < 1 for s in late), late

    minutely = successes(system, "minutely")
    assert minutely, system.log.read_text()[-3000:]
    for run in minutely:
        fired = datetime.fromisoformat(run["scheduled_for"])
        assert (fired.second, fired.microsecond) == (0, 0)
        assert 0 <= (datetime.fromisoformat(run["started_at"]) - fired).total_seconds() < 1
    job = system.api("GET", "/api/jobs/minutely/").json()
    assert job["success_count"] == len(minutely)
    assert job["last_run_status"] == "success"

    once = system.runs("once")
    assert [(r["status"], datetime.fromisoformat(r["scheduled_for"])) for r in once] == [("success", clock_jobs.run_at)]
    job = system.api("GET", "/api/jobs/once/").json()
    assert (job["status"], job["next_run_at"]) == ("completed", None)


def clear_of_a_minute_fire(margin: float = 3) -> None:
    """Wait until the clock is ``margin`` seconds away from a minute boundary, so that the minutely
    job's runs and its counts are read while none of its fires is under way."""
    second = time.time() % 60
    if second < margin or second > 60 - margin:
        time.sleep((margin - second) % 60)


def test_health_reports_every_part_up(system: System):
    response = wait_for(lambda: (r := system.api("GET", "/api/health/")).status_code == 200 and r, timeout=20)
    assert response, system.api("GET", "/api/health/").json()
    body = response.json()
    assert body["status"] == "ok"
    assert body["workers"]["count"] >= 1
    assert body["beat"]["status"] == "ok"


def test_stopping_the_command_stops_every_process_it_started(system: System):
    code, survivors = stop_system(system.proc)
    assert survivors == []
    assert code == 0
