"""Log a line, wait, log another: to watch log output arrive while the run is going."""

from __future__ import annotations

import logging
import time

from jobs.handlers import task_log


def run(lines: int = 3, pause: float = 1.5) -> int:
    print("printed to stdout")
    logging.getLogger("chatty").warning("logged with logging")
    for i in range(lines):
        task_log("line", i + 1, "of", lines)
        time.sleep(pause)
    return lines
