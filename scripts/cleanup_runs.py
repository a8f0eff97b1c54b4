"""Delete old runs, keeping the newest few of each job (what the system job cleanup-runs does)."""

from __future__ import annotations

from runs.retention import run_cleanup

TASK_INFO = {
    "name": "Clean up old runs",
    "description": "Delete finished runs older than a number of days (0: the retention setting), in batches.",
}


def run(older_than_days: int = 0, keep_per_job: int = 0) -> dict:
    return run_cleanup(older_than_days=older_than_days, keep_per_job=keep_per_job)
