"""Executors run a job once and describe how it ended. One module per kind."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import partial
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.utils.translation import gettext as _

from jobs.upstream_refs import resolve_refs
from runs.executors.base import Outcome, Progress
from runs.executors.http import HttpCall
from runs.executors.python import execute_python
from runs.executors.shell import execute_shell

if TYPE_CHECKING:
    from jobs.models import Job


def prepare(
    job: Job,
    *,
    overrides: dict[str, Any],
    progress: Progress | None = None,
    ahead: float = 0.0,
    identity: Mapping[str, str] | None = None,
) -> Callable[[], Outcome]:
    """``job``'s run made ready ``ahead`` seconds before its time; calling the result runs it, as
    ``execute``. An HTTP call is built beforehand, and its connection opened if there is time
    (see ``HttpCall``); the other kinds do everything when called. ``identity``: the headers that
    name the run to an HTTP target (``X-Crontask-Run-Id``…), sent after the job's own.
    """
    if job.kind == job.Kind.HTTP:
        return HttpCall(
            method=job.method,
            url=job.url,
            headers={**job.headers, **overrides.get("headers", {}), **(identity or {})},
            body=overrides.get("body", job.body),
            timeout=job.timeout_seconds,
            max_bytes=settings.CRONTASK_MAX_OUTPUT_BYTES,
            connect_within=ahead,
            follow_redirects=job.follow_redirects,
            progress=progress,
        ).send
    return partial(execute, job, overrides=overrides, progress=progress)


def execute(
    job: Job,
    *,
    overrides: dict[str, Any],
    progress: Progress | None = None,
    identity: Mapping[str, str] | None = None,
) -> Outcome:
    """Run ``job`` once, with the one-off ``overrides`` of a manual run applied."""
    limit = settings.CRONTASK_MAX_OUTPUT_BYTES
    if job.kind == job.Kind.HTTP:
        return prepare(job, overrides=overrides, progress=progress, identity=identity)()
    if job.kind == job.Kind.PYTHON:
        return execute_python(
            handler=job.handler,
            # A dependency run's $upstream values are resolved in its overrides (runs.dependencies);
            # any left (a run no upstream run fired) are None.
            kwargs=resolve_refs({**job.handler_kwargs, **overrides.get("handler_kwargs", {})}, None),
            timeout=job.timeout_seconds,
            max_bytes=limit,
            progress=progress,
        )
    if not settings.CRONTASK_ALLOW_SHELL:
        return Outcome(status="failed", error=_("Shell jobs are disabled on this server (CRONTASK_ALLOW_SHELL)."))
    return execute_shell(command=job.command, timeout=job.timeout_seconds, max_bytes=limit, progress=progress)
