"""Run a shell job: the command without a shell unless it needs one, output and exit code kept."""

from __future__ import annotations

import os
import shlex
import subprocess
import time

from django.conf import settings
from django.utils.translation import gettext as _

from runs.executors.base import (
    Cancelled,
    Outcome,
    OutputBuffer,
    Progress,
    cancelled_outcome,
    kill_group,
    pump,
    terminate_group,
)

# Characters that only a shell gives meaning to: pipes, redirections, variables, globs, lists.
SHELL_SYNTAX = set("|&;<>()$`*?[]{}~!#\n")


def needs_shell(command: str) -> bool:
    """True if the command uses shell syntax outside quotes (inside double quotes, $ and `)."""
    quote = ""
    escaped = False
    for char in command:
        if escaped:
            escaped = False
        elif quote == "'":
            quote = "" if char == "'" else quote
        elif quote == '"':
            if char in "$`":
                return True
            quote = "" if char == '"' else quote
        elif char == "\\":
            escaped = True
        elif char in "'\"":
            quote = char
        elif char in SHELL_SYNTAX:
            return True
    return False


def command_argv(command: str) -> list[str]:
    return ["/bin/sh", "-c", command] if needs_shell(command) else shlex.split(command)


def execute_shell(*, command: str, timeout: float, max_bytes: int, progress: Progress | None = None) -> Outcome:
    deadline = time.monotonic() + timeout
    try:
        argv = command_argv(command)
        proc = subprocess.Popen(  # noqa: S603 - running the operator's command is the point
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, so a timeout kills its children too
        )
    except ValueError as exc:  # shlex: unbalanced quotes
        return Outcome(status="failed", error=_("Cannot parse the command: %(error)s") % {"error": exc})
    except OSError as exc:
        return Outcome(status="failed", error=_("Cannot start the command: %(error)s") % {"error": exc.strerror or exc})
    output = OutputBuffer(max_bytes)
    assert proc.stdout is not None  # noqa: S101 - stdout=PIPE above
    stdout_fd = os.dup(proc.stdout.fileno())
    proc.stdout.close()

    def feed(chunk: bytes) -> None:
        output.add(chunk)
        if progress is not None:  # the output so far, stored while the command runs
            progress.output(chunk)

    try:
        finished = pump({stdout_fd: feed}, deadline=deadline, progress=progress)
    except Cancelled:
        grace = float(settings.CRONTASK_CANCEL_GRACE_SECONDS)
        gentle = terminate_group(proc.pid, grace=grace, exited=lambda: proc.poll() is not None)
        proc.wait()
        return cancelled_outcome(gentle=gentle, grace=grace, output=output.text())
    if not finished:
        kill_group(proc.pid)
        proc.wait()
        return Outcome(status="timeout", output=output.text(), error=_still_running(timeout))
    try:
        code = proc.wait(timeout=max(0.1, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        kill_group(proc.pid)
        proc.wait()
        return Outcome(status="timeout", output=output.text(), error=_still_running(timeout))
    kill_group(proc.pid)  # anything it left running in the background
    if code == 0:
        return Outcome(status="success", exit_code=0, output=output.text())
    error = (
        _("Exit code %(code)s.") % {"code": code} if code > 0 else _("Killed by signal %(signal)s.") % {"signal": -code}
    )
    return Outcome(status="failed", exit_code=code, output=output.text(), error=error)


def _still_running(timeout: float) -> str:
    return _("Still running after %(timeout)s s: killed.") % {"timeout": f"{timeout:g}"}
