"""Measuring a real beat process: its CPU and memory (psutil) and what it publishes (Redis).

Beat publishes to a Redis list that no worker reads during these measurements, so the list's
length says how many messages are out and the new entries say which. ``QueueWatch`` polls it
from a thread every few milliseconds and stamps each new message with the time it saw it.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import psutil
import redis

ROOT = Path(__file__).resolve().parents[1]
OURS = "crontask.scheduler:CrontaskScheduler"
VANILLA = "django_celery_beat.schedulers:DatabaseScheduler"


@dataclass(frozen=True)
class Message:
    seen_at: float  # time.time() when the watcher first saw it
    task: str
    job_id: str | None
    scheduled_for: datetime | None

    @property
    def lateness_ms(self) -> float | None:
        """How long after its fire's time it reached the queue; None for the stock scheduler's
        messages, which do not name the time."""
        return None if self.scheduled_for is None else 1000 * (self.seen_at - self.scheduled_for.timestamp())


class BeatProcess:
    """``celery -A crontask beat`` with the given scheduler class, started and stopped by PID."""

    def __init__(self, scheduler: str, env: dict[str, str], log: Path, cwd: Path = ROOT) -> None:
        self.scheduler = scheduler
        self.started_at = time.time()
        with log.open("wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "crontask", "beat", "-l", "INFO", "-S", scheduler,
                 "--pidfile=", "-s", str(log.with_suffix(".schedule"))],
                cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        self.ps = psutil.Process(self.proc.pid)
        self.peak_rss = 0
        self._stop = threading.Event()
        self._sampler = threading.Thread(target=self._sample, daemon=True)
        self._sampler.start()

    def cpu(self) -> float:
        """CPU seconds (user + system) used so far."""
        times = self.ps.cpu_times()
        return times.user + times.system

    def alive(self) -> bool:
        return self.proc.poll() is None

    def _sample(self) -> None:
        while not self._stop.wait(0.1):
            try:
                self.peak_rss = max(self.peak_rss, self.ps.memory_info().rss)
            except psutil.NoSuchProcess:
                return

    def stop(self) -> None:
        self._stop.set()
        stop_group(self.proc, timeout=20)


def stop_group(proc: subprocess.Popen, timeout: float) -> None:
    """SIGTERM the process group ``proc`` leads; SIGKILL it if it is still there after ``timeout``."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


class CpuMeter:
    """CPU seconds used between creation and ``since_start``, by kind of process and machine-wide.

    ``kinds`` maps a name to a function listing that kind's processes now. A thread reads them
    every ``every`` seconds and keeps each process's latest reading, so a process that ends
    meanwhile (a PostgreSQL backend whose connection reached CONN_MAX_AGE) still counts, up to
    its last reading. A process that appears after creation counts from zero.
    """

    def __init__(self, kinds: dict[str, Callable[[], list[psutil.Process]]], every: float = 0.5) -> None:
        self.kinds = kinds
        self._started = time.monotonic()
        self._machine = self._machine_busy()
        self._first = self._read()
        self._last = {name: dict(pids) for name, pids in self._first.items()}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, args=(every,), daemon=True)
        self._thread.start()

    @staticmethod
    def _machine_busy() -> float:
        machine = psutil.cpu_times()
        busy = ("user", "nice", "system", "irq", "softirq")  # the last two on Linux only
        return sum(getattr(machine, field, 0.0) for field in busy)

    def _read(self) -> dict[str, dict[int, float]]:
        readings: dict[str, dict[int, float]] = {}
        for name, processes in self.kinds.items():
            readings[name] = {}
            try:
                listed = processes()
            except psutil.Error:  # e.g. the worker's main process has gone: keep what was read
                continue
            for process in listed:
                try:
                    times = process.cpu_times()
                except psutil.Error:
                    continue
                readings[name][process.pid] = times.user + times.system
        return readings

    def _sample(self, every: float) -> None:
        while not self._stop.wait(every):
            self._merge(self._read())

    def _merge(self, readings: dict[str, dict[int, float]]) -> None:
        # Only the sampling thread merges until since_start has joined it: no lock needed.
        for name, pids in readings.items():
            self._last[name].update(pids)

    def since_start(self) -> dict[str, float]:
        """Seconds of CPU per kind, ``machine`` (all cores, everything) and ``wall``, since created."""
        self._stop.set()
        self._thread.join()
        self._merge(self._read())
        used = {
            name: sum(cpu - self._first[name].get(pid, 0.0) for pid, cpu in pids.items())
            for name, pids in self._last.items()
        }
        return {**used, "machine": self._machine_busy() - self._machine, "wall": time.monotonic() - self._started}


def processes_named(name: str) -> list[psutil.Process]:
    return [p for p in psutil.process_iter(["name"]) if p.info["name"] == name]


def processes_of_user(user: str) -> list[psutil.Process]:
    return [p for p in psutil.process_iter(["username"]) if p.info["username"] == user]


class QueueWatch:
    """Every message beat puts on the queue, with the time it appeared."""

    def __init__(self, broker_url: str, queue: str, poll: float = 0.005) -> None:
        self.redis = redis.Redis.from_url(broker_url)
        self.queue = queue
        self.poll = poll
        self._raw: list[tuple[float, bytes | str]] = []  # bytes: the client does not decode
        self._lock = threading.Lock()  # the watching thread appends while the caller reads
        self._stop = threading.Event()
        self.redis.delete(queue)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        seen = 0
        while not self._stop.wait(self.poll):
            length = self.redis.llen(self.queue)
            if length > seen:
                # Messages are pushed on the left and nothing pops them here, so a message's index
                # counted from the right never changes: read exactly the ones not seen yet.
                newest_first = self.redis.lrange(self.queue, -length, -(seen + 1))
                now = time.time()
                with self._lock:
                    self._raw.extend((now, raw) for raw in reversed(newest_first))
                seen = length
            elif length < seen:  # cleared
                seen = length

    def count(self) -> int:
        with self._lock:
            return len(self._raw)

    def messages(self, since: int = 0) -> list[Message]:
        with self._lock:
            raw = self._raw[since:]
        return [message for seen_at, data in raw for message in _decode(seen_at, data)]

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.redis.delete(self.queue)


def _decode(seen_at: float, data: bytes | str) -> list[Message]:
    """The fires in one message: one for ``execute_job``, each of a batch for ``execute_fires``."""
    envelope = json.loads(data)
    _args, kwargs, _embed = json.loads(base64.b64decode(envelope["body"]))
    task = envelope["headers"].get("task", "")
    fires = kwargs.get("fires") or [[kwargs.get("job_id"), kwargs.get("scheduled_for")]]
    return [
        Message(
            seen_at=seen_at,
            task=task,
            job_id=job_id,
            scheduled_for=datetime.fromisoformat(scheduled) if scheduled else None,
        )
        for job_id, scheduled in fires
    ]
