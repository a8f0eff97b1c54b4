"""Run a python job's handler in a forked child process.

The child is what makes the timeout real: a thread running Python code cannot be stopped, a
process can. The worker forks, the child runs the handler (``asyncio.run`` for ``async def``)
and writes its result as JSON to a pipe, cut to the output limit there so that the report
always arrives whole; what it logs (``task_log``, print, logging) comes back line by line on
another pipe and reaches the run while it is still going. At the deadline the child's process
group is killed and the worker carries on.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import gc
import inspect
import json
import logging
import os
import signal
import sys
import time
import traceback
from collections.abc import Awaitable
from typing import Any

from django.conf import settings
from django.db import connections
from django.utils.translation import gettext as _

from jobs import handlers
from jobs.expressions import ExpressionError, resolve_kwargs
from runs.executors.base import (
    Cancelled,
    Outcome,
    OutputBuffer,
    Progress,
    cancelled_outcome,
    clip,
    json_safe,
    kill_group,
    pump,
    storable_text,
    terminate_group,
)

# The child cuts each text of its report (result or error and traceback) to max_bytes; JSON
# escaping can make a text up to six times longer, so the parent reads up to this many times
# max_bytes, a bound no report of ours reaches.
REPORT_SLACK = 16

# In a handler's child: the SQLite connections it inherited, left open (_detach_inherited_connections).
_INHERITED_SQLITE: list[Any] = []


def execute_python(
    *, handler: str, kwargs: dict[str, Any], timeout: float, max_bytes: int, progress: Progress | None = None
) -> Outcome:
    deadline = time.monotonic() + timeout
    log_read, log_write = os.pipe()
    result_read, result_write = os.pipe()
    # The child never collects what it inherits: a connection of another thread of this process
    # (the cancel watch's) is unreachable there, and collecting it would close it (see
    # _detach_inherited_connections). Here the objects are frozen only for the fork.
    gc.freeze()
    try:
        pid = os.fork()
    except OSError:
        gc.unfreeze()
        raise
    if pid == 0:  # pragma: no cover - runs in the child, which leaves through os._exit
        os.close(log_read)
        os.close(result_read)
        _child(handler, kwargs, log_write, result_write, max_bytes)
    gc.unfreeze()
    os.close(log_write)
    os.close(result_write)
    with contextlib.suppress(OSError):  # the child makes its own group too; here it is so at once (a cancel's SIGTERM)
        os.setpgid(pid, pid)
    lines = _LineSplitter(progress)
    result = OutputBuffer(REPORT_SLACK * max_bytes)
    try:
        finished = pump({log_read: lines.feed, result_read: result.add}, deadline=deadline, progress=progress)
    except Cancelled:
        lines.flush()
        return _stop_cancelled(pid)
    lines.flush()
    if not finished:
        kill_group(pid)
        os.waitpid(pid, 0)
        return Outcome(
            status="timeout", error=_("Still running after %(timeout)s s: killed.") % {"timeout": f"{timeout:g}"}
        )
    _pid, status = os.waitpid(pid, 0)
    kill_group(pid)  # anything the handler left running in the background
    if result.dropped:
        size = len(result.kept) + result.dropped
        error = _("The handler's report was too large (%(size)s bytes); it was not read.") % {"size": size}
        return Outcome(status="failed", error=error)
    return _outcome(bytes(result.kept), status)


def _stop_cancelled(pid: int) -> Outcome:
    """The run was cancelled: SIGTERM the handler's process group, SIGKILL it after the grace."""
    grace = float(settings.CRONTASK_CANCEL_GRACE_SECONDS)

    def exited() -> bool:
        return os.waitpid(pid, os.WNOHANG)[0] != 0

    gentle = terminate_group(pid, grace=grace, exited=exited)
    if not gentle:
        os.waitpid(pid, 0)
    return cancelled_outcome(gentle=gentle, grace=grace)


def _outcome(raw: bytes, wait_status: int) -> Outcome:
    try:
        report = json.loads(raw)
    except ValueError:
        if os.WIFSIGNALED(wait_status):
            signame = signal.Signals(os.WTERMSIG(wait_status)).name
            error = _("The handler's process was killed by signal %(signal)s before reporting a result.")
            return Outcome(status="failed", error=error % {"signal": signame})
        error = _("The handler's process exited with code %(code)s before reporting a result.")
        return Outcome(status="failed", error=error % {"code": os.waitstatus_to_exitcode(wait_status)})
    if report["ok"]:
        return Outcome(status="success", result=json_safe(report["result"]))
    # The child cut these already; cutting again would cut into its marker.
    return Outcome(status="failed", error=storable_text(report["error"]), traceback=storable_text(report["traceback"]))


class _LineSplitter:
    def __init__(self, progress: Progress | None) -> None:
        self.progress = progress
        self.pending = b""

    def feed(self, chunk: bytes) -> None:
        self.pending += chunk
        *complete, self.pending = self.pending.split(b"\n")
        for line in complete:
            self._emit(line)

    def flush(self) -> None:
        if self.pending:
            self._emit(self.pending)
            self.pending = b""

    def _emit(self, line: bytes) -> None:
        if self.progress is not None:
            self.progress.log(line.decode("utf-8", errors="replace").rstrip("\r"))


def _child(
    handler: str, kwargs: dict[str, Any], log_fd: int, result_fd: int, max_bytes: int
) -> None:  # pragma: no cover
    """Run the handler and report; never returns."""
    code = 0
    try:
        _detach_inherited_connections()
        os.setpgid(0, 0)
        _die_with_parent()
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.dup2(log_fd, 1)  # print() and logging go to the run's log
        os.dup2(log_fd, 2)
        sys.stdout = os.fdopen(1, "w", buffering=1, closefd=False)
        sys.stderr = os.fdopen(2, "w", buffering=1, closefd=False)
        _log_to_run()
        report = _run_handler(handler, kwargs)
        payload = _encode_report(report, max_bytes)
    except BaseException as exc:  # noqa: BLE001 - whatever happens, report it
        error = clip(f"{type(exc).__name__}: {exc}", max_bytes)
        payload = json.dumps({"ok": False, "error": error, "traceback": ""}).encode()
        code = 1
    try:
        with os.fdopen(result_fd, "wb") as out:
            out.write(payload)
        connections.close_all()
    finally:
        os._exit(code)


def _encode_report(report: dict[str, Any], max_bytes: int) -> bytes:  # pragma: no cover - in the child
    """The report as JSON, each part within ``max_bytes``.

    A result whose JSON is larger is sent as that JSON text cut at the limit with the usual
    marker: the handler did its work, so the run is still a success, and it says what it kept.
    """
    if report["ok"]:
        text = json.dumps(report["result"], ensure_ascii=False, allow_nan=False)
        if len(text.encode()) > max_bytes:
            report = {"ok": True, "result": clip(text, max_bytes)}
    else:
        report = {
            **report,
            "error": clip(report["error"], max_bytes),
            "traceback": clip(report["traceback"], max_bytes),
        }
    return json.dumps(report).encode()


def _log_to_run() -> None:  # pragma: no cover - in the child
    """What the handler logs with ``logging`` goes to the run's log, not the worker's."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("[%(asctime)s] %(levelname)s %(name)s: %(message)s", "%H:%M:%S"))
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(logging.INFO)


def _die_with_parent() -> None:  # pragma: no cover - in the child
    """On Linux, have the kernel kill this child if the worker process dies (SIGKILL included),
    so a killed worker leaves no orphaned handler running."""
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        if os.getppid() == 1:  # the parent died before prctl took effect
            os._exit(1)


def _detach_inherited_connections() -> None:  # pragma: no cover - in the child
    """Drop the database connections inherited from the worker without ending them.

    A connection closed normally would tell the server goodbye over the socket the parent still
    uses. Closing the child's copy of the descriptor first (as Celery does after its own forks)
    keeps the parent's session alive; the handler opens fresh connections if it needs them.
    """
    for conn in connections.all(initialized_only=True):
        raw = conn.connection
        if raw is None:
            continue
        if conn.vendor == "sqlite":
            # Not closed: SQLite's in-process mutexes are not made for fork(). One that another
            # thread of the process held at the fork (a browser test's live server; in a worker,
            # the cancel watch polls the database) is held for ever in the child, and closing
            # there waited on it until the run's timeout. Kept referenced so that nothing
            # finalizes it: the child ends with os._exit. (A handler that opens a connection of
            # its own to SQLite can still meet such a mutex: on SQLite, one process's threads.)
            _INHERITED_SQLITE.append(raw)
        else:
            fileno = getattr(raw, "fileno", None)
            if fileno is not None:
                with contextlib.suppress(Exception):
                    os.close(fileno())
            with contextlib.suppress(Exception):
                raw.close()
        conn.connection = None
        # Whatever transaction the parent had open is not the child's.
        conn.in_atomic_block = False
        conn.needs_rollback = False
        conn.savepoint_ids = []
        conn.atomic_blocks = []
        conn.run_on_commit = []


def _run_handler(handler: str, kwargs: dict[str, Any]) -> dict[str, Any]:  # pragma: no cover - in the child
    def log_line(line: str) -> None:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()

    try:
        func = handlers.resolve(handler)
        values = resolve_kwargs(kwargs)
        with handlers.log_sink(log_line):
            value = func(**values)
            if inspect.isawaitable(value):
                value = asyncio.run(_await(value))
        # Plain JSON types that PostgreSQL's jsonb takes: str() of anything else, NaN → null.
        value = json_safe(json.loads(json.dumps(value, default=str)))
    except (handlers.HandlerError, ExpressionError) as exc:
        return {"ok": False, "error": str(exc), "traceback": ""}
    except Exception as exc:  # noqa: BLE001 - the handler's own failure, reported with its traceback
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()}
    return {"ok": True, "result": value}


async def _await(awaitable: Awaitable[object]) -> object:
    return await awaitable
