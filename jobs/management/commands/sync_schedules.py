from __future__ import annotations

from typing import Any

from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop

from core.commands import TranslatedCommand
from core.progress import ProgressBar
from jobs import services
from jobs.models import Job
from jobs.tags import tags_rebuild


class Command(TranslatedCommand):
    help = gettext_noop(
        "Rebuild the django-celery-beat periodic tasks and the list of tags in use from the jobs (the jobs are "
        "the source of truth), remove the orphaned tasks and create missing system jobs; prints a one-line summary."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        created = services.ensure_system_jobs()
        with ProgressBar(self.stderr, Job.objects.count(), label=_("jobs")) as progress:
            synced, removed = services.sync_all_schedules(on_progress=progress.advance)
        added, dropped = tags_rebuild()
        self.stdout.write(
            _(
                "Synced %(synced)d jobs, removed %(removed)d orphaned periodic tasks, created %(created)d system jobs; "
                "tags in use: %(added)d added, %(dropped)d dropped."
            )
            % {"synced": synced, "removed": removed, "created": len(created), "added": added, "dropped": dropped}
        )
