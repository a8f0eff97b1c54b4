"""Sleep, logging as it goes; with ``pidfile`` it writes its process id there first."""

from __future__ import annotations

import os
import time

from jobs.handlers import task_log


def run(seconds: float = 1.0, pidfile: str = "") -> dict:
    if pidfile:
        with open(pidfile, "w") as out:
            out.write(str(os.getpid()))
    task_log("sleeping", seconds)
    time.sleep(seconds)
    task_log("woke up")
    return {"slept": seconds}
