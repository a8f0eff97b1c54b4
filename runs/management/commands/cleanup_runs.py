from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import CommandError, CommandParser
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop

from core.commands import TranslatedCommand
from core.progress import ProgressBar
from runs.retention import count_old_runs, delete_old_runs, parse_age


class Command(TranslatedCommand):
    help = gettext_noop(
        "Delete finished runs older than an age, in batches, keeping each job's newest N. "
        "Prints how many were deleted and how many of the old runs were kept."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--older-than",
            default=f"{settings.CRONTASK_RUN_RETENTION_DAYS}d",
            help=_("An age: 30d, 12h, 90m, 3600s, 2w; a bare number is days (default: CRONTASK_RUN_RETENTION_DAYS)."),
        )
        parser.add_argument(
            "--keep-per-job", type=int, default=0, help=_("Always keep each job's newest N runs (default 0).")
        )
        parser.add_argument(
            "--batch-size", type=int, default=5000, help=_("Runs deleted per statement (default 5000).")
        )

    def handle(self, *args: Any, older_than: str, keep_per_job: int, batch_size: int, **options: Any) -> None:
        try:
            age = parse_age(older_than)
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        if keep_per_job < 0 or batch_size < 1:
            raise CommandError(_("--keep-per-job must be 0 or more and --batch-size at least 1."))
        now = timezone.now()
        old = count_old_runs(older_than=age, now=now)
        with ProgressBar(self.stderr, old.finished, label=_("runs")) as progress:
            deleted = delete_old_runs(
                older_than=age, keep_per_job=keep_per_job, batch_size=batch_size, now=now, on_batch=progress.advance
            )
        # A run that ended during the cleanup may have been deleted without being counted: never below 0.
        kept = max(old.total - deleted, 0)
        reasons = _("not finished") + (
            _(", or among each job's newest %(n)d") % {"n": keep_per_job} if keep_per_job else ""
        )
        self.stdout.write(
            _("Deleted %(deleted)d runs older than %(age)s; kept %(kept)d older ones (%(reasons)s).")
            % {"deleted": deleted, "age": older_than, "kept": kept, "reasons": reasons}
        )
