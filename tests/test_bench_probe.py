"""The benchmark's probes: the CPU meter charges each kind of process with what that kind used; the
queue watcher sees every fire beat publishes."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime

import psutil

from bench.probe import CpuMeter, QueueWatch

# Uses 0.3 s of CPU, then sleeps a while (so the meter reads it at least once), then exits.
SPIN = "import time\nend = time.process_time() + 0.3\nwhile time.process_time() < end: pass\ntime.sleep({})\n"


def _cpu(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system


def test_cpu_meter_counts_a_process_that_started_and_ended_in_between_and_not_what_came_before():
    # Busy before the meter starts, idle after: what it used before must not be charged.
    earlier = subprocess.Popen([sys.executable, "-c", SPIN.format(30)])
    spinners: list[psutil.Process] = []
    try:
        deadline = time.monotonic() + 60
        while _cpu(psutil.Process(earlier.pid)) < 0.28 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.2)  # its last ticks
        meter = CpuMeter({"spinner": lambda: spinners, "earlier": lambda: [psutil.Process(earlier.pid)]}, every=0.1)
        spinner = subprocess.Popen([sys.executable, "-c", SPIN.format(1)])
        spinners.append(psutil.Process(spinner.pid))
        spinner.wait(timeout=60)
        spinners.clear()  # gone, as a PostgreSQL backend whose connection was closed
        used = meter.since_start()
    finally:
        earlier.kill()
        earlier.wait()
    assert used["spinner"] >= 0.28  # /proc counts in clock ticks
    assert used["earlier"] < 0.1
    assert used["machine"] >= used["spinner"] * 0.9  # the machine's counters tick more coarsely
    assert used["wall"] > 0


def test_cpu_meter_keeps_its_readings_when_a_kind_can_no_longer_be_listed():
    def gone() -> list[psutil.Process]:
        raise psutil.NoSuchProcess(pid=1)

    meter = CpuMeter({"self": lambda: [psutil.Process()], "gone": gone}, every=0.05)
    end = time.process_time() + 0.1
    while time.process_time() < end:
        pass
    used = meter.since_start()
    assert used["gone"] == 0
    assert used["self"] > 0


def test_the_queue_watcher_reads_each_fire_of_every_message_beat_publishes():
    from kombu import Connection, Queue

    from crontask.celery import app
    from scheduling.fires import Fire
    from scheduling.publisher import FirePublisher

    url, name = "redis://127.0.0.1:6379/14", f"bench-watch-{uuid.uuid4().hex[:8]}"
    at = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
    fires = [Fire(f"h{i}", at, kind="http") for i in range(3)] + [Fire("py", at, kind="python")]
    watch = QueueWatch(url, name, poll=0.01)
    try:
        with Connection(url) as conn:
            publisher = FirePublisher(app, conn.Producer())
            publisher.queue = Queue(name, routing_key=name)
            publisher.publish(fires)
        deadline = time.monotonic() + 10
        while watch.count() < 2 and time.monotonic() < deadline:  # one batch of three, one alone
            time.sleep(0.01)
        messages = watch.messages()
    finally:
        watch.close()
    assert sorted((m.task, m.job_id, m.scheduled_for) for m in messages) == [
        ("runs.tasks.execute_fires", "h0", at),
        ("runs.tasks.execute_fires", "h1", at),
        ("runs.tasks.execute_fires", "h2", at),
        ("runs.tasks.execute_job", "py", at),
    ]
