"""The system as a user runs it: web, worker and beat as real processes, a real HTTP target."""

from __future__ import annotations

import itertools
import time
from datetime import datetime

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


def test_jobs_fire_on_schedule_and_their_runs_are_recorded(system: System, http_target):
    every_minute = system.api(
        "POST", "/api/jobs/", json={"id": "minutely", "cron": "* * * * *", "url": f"{http_target.url}/cron"}
    )
    assert every_minute.status_code == 201, every_minute.text
    created = time.monotonic()
    ping = system.api(
        "POST", "/api/jobs/", json={"id": "ping", "interval_seconds": 2, "url": f"{http_target.url}/", "method": "GET"}
    )
    assert ping.status_code == 201, ping.text

    # an interval job: at least 3 successful runs within 15 s, listed by the API
    assert wait_for(lambda: len(successes(system, "ping")) >= 3, timeout=15 - (time.monotonic() - created)), (
        system.runs("ping"),
        system.log.read_text()[-3000:],
    )
    fires = sorted(datetime.fromisoformat(r["scheduled_for"]) for r in successes(system, "ping"))
    assert all((b - a).total_seconds() % 2 == 0 for a, b in itertools.pairwise(fires))

    # the same message delivered twice through the real broker makes one run
    system.api("POST", "/api/jobs/", json={"id": "dup", "url": f"{http_target.url}/dup"})
    system.manage(
        "shell",
        "-c",
        (
            "from runs.tasks import execute_job\n"
            "for _ in range(2): execute_job.delay(job_id='dup', scheduled_for='2026-01-01T00:00:00+00:00')"
        ),
    )
    assert wait_for(lambda: system.runs("dup"), timeout=15)
    time.sleep(2)
    assert len(system.runs("dup")) == 1
    assert http_target.hits["/dup"] == 1

    # pausing stops new runs; resuming starts them again
    assert system.api("POST", "/api/jobs/ping/pause/").json()["status"] == "paused"
    time.sleep(1.5)  # a fire published just before the pause may still finish
    paused_count = len(system.runs("ping"))
    time.sleep(5)
    assert len(system.runs("ping")) == paused_count
    assert system.api("POST", "/api/jobs/ping/resume/").json()["status"] == "active"
    assert wait_for(lambda: len(successes(system, "ping")) > paused_count, timeout=8)

    # a cron job fires at the minute boundary
    runs = wait_for(lambda: successes(system, "minutely"), timeout=65 - (time.monotonic() - created))
    assert runs, system.log.read_text()[-3000:]
    scheduled = datetime.fromisoformat(runs[-1]["scheduled_for"])
    started = datetime.fromisoformat(runs[-1]["started_at"])
    assert (scheduled.second, scheduled.microsecond) == (0, 0)
    assert 0 <= (started - scheduled).total_seconds() < 5
    job = system.api("GET", "/api/jobs/minutely/").json()
    assert job["success_count"] >= 1
    assert job["last_run_status"] == "success"

    # stopping the command stops every process it started
    code, survivors = stop_system(system.proc)
    assert survivors == []
    assert code == 0
