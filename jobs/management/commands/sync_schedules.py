from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from jobs import services


class Command(BaseCommand):
    help = "Rebuild the django-celery-beat periodic tasks from the jobs (the jobs are the source of truth)."

    def handle(self, *args: Any, **options: Any) -> None:
        created = services.ensure_system_jobs()
        synced, removed = services.sync_all_schedules()
        self.stdout.write(
            f"Synced {synced} jobs, removed {removed} orphaned periodic tasks, created {len(created)} system jobs."
        )
