"""Execution policies with real worker and beat processes: timeout, retries, forbid, lost runs."""

from __future__ import annotations

import itertools
import os
import re
import signal
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psutil
import pytest

from tests.e2e.conftest import System, stop_system
from tests.e2e.test_system import create, wait_for

pytestmark = pytest.mark.e2e

SYSTEM_ENV = {
    "CRONTASK_SCRIPTS_DIR": str(Path(__file__).resolve().parents[1] / "scripts"),
    "CRONTASK_REAPER_INTERVAL": "1",
    "CRONTASK_LOST_GRACE_SECONDS": "2",
}


def soon(seconds: float = 2) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).replace(microsecond=0).isoformat()


def finished(system: System, job_id: str) -> list[dict]:
    return [r for r in system.runs(job_id) if r["status"] not in ("queued", "running")]


def test_a_run_past_its_timeout_ends_timeout_and_the_worker_goes_on(system: System, target):
    create(
        system,
        id="slow",
        kind="python",
        handler="scripts:sleepy",
        handler_kwargs={"seconds": 60},
        timeout_seconds=2,
        run_at=soon(),
    )
    create(system, id="beside", interval_seconds=1, url=f"{target.url}/beside")
    runs = wait_for(lambda: finished(system, "slow"), timeout=15)
    assert [r["status"] for r in runs] == ["timeout"], system.log.read_text()[-3000:]
    assert 2000 <= runs[0]["duration_ms"] < 4500
    served = len(finished(system, "beside"))
    assert wait_for(lambda: len(finished(system, "beside")) >= served + 2, timeout=5)
    system.api("DELETE", "/api/jobs/beside/")


def test_a_failed_fire_is_retried_with_backoff_until_it_succeeds(system: System, target):
    tag = re.sub(r"\W", "", system.env["CRONTASK_QUEUE"])
    create(system, id="flaky", url=f"{target.url}/flaky/{tag}/2", max_retries=4, retry_backoff_seconds=1, run_at=soon())
    runs = wait_for(
        lambda: [r for r in system.runs("flaky") if r["status"] == "success"] and system.runs("flaky"), timeout=20
    )
    runs = sorted(runs, key=lambda r: r["attempt"])
    assert [(r["attempt"], r["trigger"], r["status"]) for r in runs] == [
        (1, "scheduled", "failed"),
        (2, "retry", "failed"),
        (3, "retry", "success"),
    ]
    assert len({r["scheduled_for"] for r in runs}) == 1  # all attempts of one fire
    gaps = [
        (datetime.fromisoformat(b["started_at"]) - datetime.fromisoformat(a["finished_at"])).total_seconds()
        for a, b in itertools.pairwise(runs)
    ]
    assert gaps[0] >= 0.9, gaps  # 1 s
    assert gaps[1] >= 1.9, gaps  # then 2 s
    time.sleep(2)
    assert len(system.runs("flaky")) == 3  # the success ended the chain


def test_forbid_skips_fires_while_a_run_is_going(system: System):
    create(
        system,
        id="overlap",
        kind="python",
        handler="scripts:sleepy",
        handler_kwargs={"seconds": 2.5},
        interval_seconds=1,
        concurrency_policy="forbid",
        timeout_seconds=10,
    )
    assert wait_for(lambda: len([r for r in system.runs("overlap") if r["status"] == "success"]) >= 2, timeout=20)
    paused_at = datetime.now(UTC)
    system.api("POST", "/api/jobs/overlap/pause/")
    # the run under way ends (2.5 s at most), a fire sent just before the pause is skipped
    wait_for(lambda: len(finished(system, "overlap")) == len(system.runs("overlap")), timeout=5)
    runs = finished(system, "overlap")
    skipped = [r for r in runs if r["status"] == "skipped"]
    # A fire claimed by beat just before the pause (up to the lead, 250 ms, ahead of its time) is
    # skipped by the worker's claim as paused: the test's own pause, not an overlap.
    by_the_pause = [
        r for r in skipped
        if r["error"].startswith("The job was paused")
        and datetime.fromisoformat(r["scheduled_for"]) >= paused_at - timedelta(seconds=1)
    ]  # fmt: skip
    overlapping = [r for r in skipped if r not in by_the_pause]
    assert overlapping
    assert all("forbid" in r["error"] for r in overlapping)
    spans = sorted(
        (datetime.fromisoformat(r["started_at"]), datetime.fromisoformat(r["finished_at"]))
        for r in runs
        if r["status"] == "success"
    )
    assert all(prev_end <= start for (_, prev_end), (start, _) in itertools.pairwise(spans))


def test_a_worker_killed_mid_run_leaves_a_lost_run_and_no_second_run(system: System, tmp_path):
    pidfile = tmp_path / "handler.pid"
    create(
        system,
        id="victim",
        kind="python",
        handler="scripts:sleepy",
        handler_kwargs={"seconds": 30, "pidfile": str(pidfile)},
        timeout_seconds=3,
        run_at=soon(),
    )
    running = wait_for(lambda: [r for r in system.runs("victim") if r["status"] == "running"], timeout=15)
    assert running, system.runs("victim")
    assert wait_for(pidfile.exists, timeout=5)
    found = re.search(r"pid=(\d+)", running[0]["worker"])
    assert found, running[0]["worker"]
    pool_child = int(found.group(1))
    handler = int(pidfile.read_text())
    os.kill(pool_child, signal.SIGKILL)
    lost = wait_for(lambda: [r for r in system.runs("victim") if r["status"] == "lost"], timeout=15)
    assert lost, (system.runs("victim"), system.log.read_text()[-3000:])
    assert "stopped" in lost[0]["error"]
    # the handler died with its worker, and the redelivered message made no second run
    assert wait_for(lambda: not psutil.pid_exists(handler) or psutil.Process(handler).status() == "zombie", 5)
    time.sleep(3)
    assert len(system.runs("victim")) == 1
    # It was delivered again: acks late and reject-on-worker-lost gave the message back when
    # its worker died, and the run claim refused the copy (runs.claims logs it).
    assert wait_for(lambda: "duplicate delivery of job victim fire" in system.log.read_text(), timeout=10), (
        system.log.read_text()[-3000:]
    )
    job = system.api("GET", "/api/jobs/victim/").json()
    assert (job["last_run_status"], job["failure_count"]) == ("lost", 1)


def test_stopping_the_system_stops_every_process(system: System):
    code, survivors = stop_system(system.proc)
    assert survivors == []
    assert code == 0
