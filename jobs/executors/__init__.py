"""Executors run a job once and describe how it ended. One module per kind."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.conf import settings

from jobs.executors.base import Outcome, Progress
from jobs.executors.http import execute_http
from jobs.executors.python import execute_python
from jobs.executors.shell import execute_shell

if TYPE_CHECKING:
    from jobs.models import Job


def execute(job: Job, *, overrides: dict[str, Any], progress: Progress | None = None) -> Outcome:
    """Run ``job`` once, with the one-off ``overrides`` of a manual run applied."""
    limit = settings.CRONTASK_MAX_OUTPUT_BYTES
    if job.kind == job.Kind.HTTP:
        return execute_http(
            method=job.method,
            url=job.url,
            headers={**job.headers, **overrides.get("headers", {})},
            body=overrides.get("body", job.body),
            timeout=job.timeout_seconds,
            max_bytes=limit,
        )
    if job.kind == job.Kind.PYTHON:
        return execute_python(
            handler=job.handler,
            kwargs={**job.handler_kwargs, **overrides.get("handler_kwargs", {})},
            timeout=job.timeout_seconds,
            max_bytes=limit,
            progress=progress,
        )
    if not settings.CRONTASK_ALLOW_SHELL:
        return Outcome(status="failed", error="Shell jobs are disabled on this server (CRONTASK_ALLOW_SHELL).")
    return execute_shell(command=job.command, timeout=job.timeout_seconds, max_bytes=limit, progress=progress)
