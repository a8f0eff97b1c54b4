"""Delete old runs, keeping the newest few of each job (what the system job cleanup-runs does)."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from jobs.handlers import task_log
from runs.models import Run

TASK_INFO = {
    "name": "Clean up old runs",
    "description": "Delete finished runs older than a number of days, in batches.",
}


def run(older_than_days: int = 0, batch_size: int = 1000) -> dict:
    """Delete finished runs started more than ``older_than_days`` days ago (0: the retention setting)."""
    days = older_than_days or settings.CRONTASK_RUN_RETENTION_DAYS
    cutoff = timezone.now() - timedelta(days=days)
    old = Run.objects.filter(started_at__lt=cutoff, status__in=Run.FINISHED)
    deleted = 0
    while True:
        ids = list(old.values_list("pk", flat=True)[:batch_size])
        if not ids:
            break
        deleted += Run.objects.filter(pk__in=ids).delete()[0]
        task_log(f"deleted {deleted} runs so far")
    task_log(f"done: {deleted} runs older than {days} days deleted")
    return {"deleted": deleted, "older_than_days": days}
