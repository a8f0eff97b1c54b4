"""Delete old runs, keeping the newest few of each job (what the system job cleanup-runs does)."""

from __future__ import annotations

from jobs.handlers import handler
from runs.retention import cleanup_kwargs_problems, run_cleanup

TASK_INFO = {
    "name": "Clean up old runs",
    "description": "Delete finished runs older than a number of days (left out: the retention setting), in batches.",
}


@handler(validate=cleanup_kwargs_problems)
def run(older_than_days: int | None = None, keep_per_job: int = 0) -> dict:
    return run_cleanup(older_than_days=older_than_days, keep_per_job=keep_per_job)
