"""The benchmark's CPU meter: it charges each kind of process with what that kind used."""

from __future__ import annotations

import subprocess
import sys

import psutil

from bench.probe import CpuMeter

# Uses 0.3 s of CPU, then stays a while (so the meter reads it at least once), then exits.
SPIN = "import time\nend = time.process_time() + 0.3\nwhile time.process_time() < end: pass\ntime.sleep(1)\n"


def test_cpu_meter_counts_a_process_that_started_and_ended_in_between_and_not_the_idle_ones():
    idle = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    spinners: list[psutil.Process] = []
    try:
        meter = CpuMeter({"spinner": lambda: spinners, "idle": lambda: [psutil.Process(idle.pid)]}, every=0.1)
        spinner = subprocess.Popen([sys.executable, "-c", SPIN])
        spinners.append(psutil.Process(spinner.pid))
        spinner.wait(timeout=60)
        spinners.clear()  # gone, as a PostgreSQL backend whose connection was closed
        used = meter.since_start()
    finally:
        idle.kill()
        idle.wait()
    assert used["spinner"] >= 0.3
    assert used["idle"] < 0.1
    assert used["machine"] >= used["spinner"] * 0.9  # the machine's counters tick more coarsely
    assert used["wall"] > 0
