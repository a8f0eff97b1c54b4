"""The benchmark's CPU meter: it charges each kind of process with what that kind used."""

from __future__ import annotations

import subprocess
import sys
import time

import psutil

from bench.probe import CpuMeter

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
