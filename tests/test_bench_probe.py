"""The benchmark's CPU meter: it charges each kind of process with what that kind used."""

from __future__ import annotations

import subprocess
import sys
import time

import psutil

from bench.probe import CpuMeter

SPIN = "import time\nend = time.process_time() + 0.3\nwhile time.process_time() < end: pass\ntime.sleep(30)\n"


def _cpu(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system


def test_cpu_meter_charges_each_kind_and_counts_a_new_process_from_zero():
    children = [subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])]
    spinners: list[psutil.Process] = []
    try:
        meter = CpuMeter({"spinner": lambda: spinners, "idle": lambda: [psutil.Process(children[0].pid)]})
        # Started after the first reading: all it uses counts.
        children.append(subprocess.Popen([sys.executable, "-c", SPIN]))
        spinners.append(psutil.Process(children[1].pid))
        deadline = time.monotonic() + 60
        while _cpu(spinners[0]) < 0.3 and time.monotonic() < deadline:
            time.sleep(0.05)
        used = meter.since_start()
    finally:
        for child in children:
            child.kill()
            child.wait()
    assert used["spinner"] >= 0.3
    assert used["idle"] < 0.1
    assert used["machine"] >= used["spinner"] * 0.9  # the machine's counters tick more coarsely
    assert used["wall"] > 0
