"""How fast this machine runs Python right now: the CPU a fixed piece of work takes.

The development machine is shared: the same code measured an hour apart has taken 1.5 times as
long (a create's CPU, a run's, an import). ``bench/run`` prints this figure before and after its
stages, so a run's numbers can be read against the machine's speed at the time, and two runs
compared: if it took 1.4 times as long in one run, that run's CPU figures are expected about 1.4
times as high. It is CPU time (``time.process_time``), so waiting for other processes does not
count, but sharing the core's caches and clock with them does.
"""

from __future__ import annotations

import json
import re
import statistics
import time

_WORD = re.compile(r"[a-z]+")


def _work() -> int:
    """JSON, strings, a regex, dicts and small calls: what a request or a run spends its Python on."""
    job = {"id": "job-0001", "cron": "*/5 * * * *", "url": "http://127.0.0.1/x", "headers": {"X-A": "b"}}
    found = 0
    for n in range(3000):
        text = json.dumps({**job, "n": n, "tags": ["a", "b", str(n)]})
        loaded = json.loads(text)
        found += len(_WORD.findall(text)) + len(loaded["tags"])
        found += sum(len(key) for key in sorted(loaded))
    return found


def speed_ms(repeats: int = 5) -> float:
    """The median CPU milliseconds of ``repeats`` runs of the fixed work (lower is faster)."""
    _work()  # warm
    taken = []
    for _ in range(repeats):
        began = time.process_time()
        _work()
        taken.append((time.process_time() - began) * 1000)
    return statistics.median(taken)


def report(label: str) -> float:
    ms = speed_ms()
    print(f"machine speed {label}: the fixed Python work (bench/speed.py) took {ms:.1f} ms of CPU", flush=True)
    return ms
