"""Executors run a job once and describe how it ended. One module per kind."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.conf import settings

from jobs.executors.base import Outcome
from jobs.executors.http import execute_http

if TYPE_CHECKING:
    from jobs.models import Job


def execute(job: Job, *, overrides: dict[str, Any]) -> Outcome:
    """Run ``job`` once with the one-off ``overrides`` of a manual run applied."""
    if job.kind == job.Kind.HTTP:
        return execute_http(
            method=job.method,
            url=job.url,
            headers={**job.headers, **overrides.get("headers", {})},
            body=overrides.get("body", job.body),
            timeout=job.timeout_seconds,
            max_bytes=settings.CRONTASK_MAX_OUTPUT_BYTES,
        )
    # Python handlers and shell commands arrive with issue #4; until then such a run fails
    # with a clear reason instead of pretending to succeed.
    return Outcome(status="failed", error=f"Jobs of kind {job.kind!r} cannot be executed yet.")
