"""What an executor returns, and the helpers every executor shares."""

from __future__ import annotations

import contextlib
import math
import os
import selectors
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.utils.translation import gettext as _


@dataclass
class Outcome:
    """How a run ended. ``status`` is one of Run.Status; the other fields are what applies."""

    status: str
    status_code: int | None = None
    response_body: str = ""
    result: Any = None
    exit_code: int | None = None
    output: str = ""
    error: str = ""
    traceback: str = ""


def storable_text(text: str) -> str:
    """``text`` as a database can store it.

    PostgreSQL text and jsonb refuse NUL, so each NUL becomes U+FFFD (as undecodable bytes
    do); lone surrogates, which cannot be encoded as UTF-8 at all, become "?".
    """
    text = text.replace("\x00", "\ufffd")
    try:
        text.encode()
    except UnicodeEncodeError:
        text = text.encode(errors="replace").decode()
    return text


def json_safe(value: Any) -> Any:
    """``value`` as JSON that PostgreSQL's jsonb accepts.

    NaN and ±Infinity become null (as JavaScript's JSON.stringify does); strings and keys
    lose their NUL; anything that is not a JSON type becomes its ``str``.
    """
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, str):
        return storable_text(value)
    if isinstance(value, dict):
        return {storable_text(str(key)): json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(item) for item in value]
    return storable_text(str(value))


def clip(data: bytes | str, max_bytes: int) -> str:
    """Text cut at ``max_bytes`` (UTF-8), with a marker saying how much was left out."""
    raw = data.encode(errors="replace") if isinstance(data, str) else data
    if len(raw) <= max_bytes:
        return storable_text(raw.decode("utf-8", errors="replace"))
    kept = raw[:max_bytes].decode("utf-8", errors="ignore")
    marker = _("[… truncated: %(bytes)s more bytes not kept]") % {"bytes": len(raw) - max_bytes}
    return storable_text(f"{kept}\n{marker}")


class Cancelled(Exception):
    """Raised by ``pump`` when the run was cancelled: the executor stops its process and says so."""


class Progress:
    """What an executor reports while it runs (log lines, a tick at least once a second), and
    how it hears that its run was cancelled (``cancel``, from another thread)."""

    def __init__(self) -> None:
        self._cancelled = threading.Event()
        self._on_cancel: list[Callable[[], None]] = []
        self._lock = threading.Lock()

    def log(self, line: str) -> None:
        """A line the job logged (task_log, print, logging)."""

    def tick(self) -> None:
        """Called about once a second while the job runs."""

    def cancel(self) -> None:
        """The run was cancelled: ``cancelled`` turns true and what was given to ``when_cancelled`` is called."""
        with self._lock:
            self._cancelled.set()
            callbacks, self._on_cancel = self._on_cancel, []
        for callback in callbacks:
            callback()

    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    def when_cancelled(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` when the run is cancelled (now, if it has been)."""
        with self._lock:
            if not self._cancelled.is_set():
                self._on_cancel.append(callback)
                return
        callback()

    def output(self, data: bytes) -> None:
        """A chunk of a shell command's output (stdout and stderr), as it arrives."""


class OutputBuffer:
    """Keeps the first ``max_bytes`` of a stream and counts the rest."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.kept = bytearray()
        self.dropped = 0

    def add(self, data: bytes) -> None:
        room = self.max_bytes - len(self.kept)
        self.kept += data[: max(room, 0)]
        self.dropped += max(len(data) - max(room, 0), 0)

    def text(self) -> str:
        text = self.kept.decode("utf-8", errors="replace")
        if self.dropped:
            text += "\n" + _("[… truncated: %(bytes)s more bytes not kept]") % {"bytes": self.dropped}
        return storable_text(text)


# How often ``pump`` looks whether its run was cancelled, at the least.
CANCEL_CHECK_SECONDS = 0.25


def pump(streams: dict[int, Callable[[bytes], None]], *, deadline: float, progress: Progress | None = None) -> bool:
    """Read the file descriptors until each reaches EOF, feeding each chunk to its callback.

    Returns False if ``deadline`` (time.monotonic) passed first; raises ``Cancelled`` (within a
    quarter of a second) if ``progress`` is cancelled. Closes the descriptors.
    """
    selector = selectors.DefaultSelector()
    for fd, callback in streams.items():
        os.set_blocking(fd, False)
        selector.register(fd, selectors.EVENT_READ, callback)
    try:
        while selector.get_map():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            for key, _ in selector.select(timeout=min(remaining, CANCEL_CHECK_SECONDS)):
                chunk = os.read(key.fd, 65536)
                if chunk:
                    key.data(chunk)
                else:
                    selector.unregister(key.fd)
            if progress is not None:
                progress.tick()
                if progress.cancelled():
                    raise Cancelled
        return True
    finally:
        for fd in streams:
            with contextlib.suppress(OSError):
                os.close(fd)
        selector.close()


def terminate_group(pid: int, *, grace: float, exited: Callable[[], bool]) -> bool:
    """SIGTERM a child's process group, then SIGKILL it if ``exited`` (which reaps the child) is
    still false after ``grace`` seconds. True if it ended on SIGTERM."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if exited():
            kill_group(pid)  # what it left running in its group
            return True
        time.sleep(0.05)
    kill_group(pid)
    return False


def cancelled_outcome(*, gentle: bool, grace: float, **fields: Any) -> Outcome:
    """How a cancelled run of a process ended: on SIGTERM, or killed after the grace."""
    how = (
        _("it stopped on SIGTERM.")
        if gentle
        else _("it was still running %(grace)s s after SIGTERM: killed.") % {"grace": f"{grace:g}"}
    )
    return Outcome(status="cancelled", error=cancelled_error(how), **fields)


def cancelled_error(reason: str) -> str:
    """A cancelled run's error: "Cancelled: " and ``reason`` (``runs.execution`` names who cancelled it)."""
    return _("Cancelled: %(reason)s") % {"reason": reason}


def kill_group(pid: int) -> None:
    """SIGKILL a child's whole process group (it leads one), so nothing it started survives."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
