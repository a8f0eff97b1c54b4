from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from runs.retention import delete_old_runs, parse_age


class Command(BaseCommand):
    help = "Delete finished runs older than an age, in batches, keeping each job's newest N."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--older-than",
            default=f"{settings.CRONTASK_RUN_RETENTION_DAYS}d",
            help="30d, 12h, 90m (default: the retention).",
        )
        parser.add_argument("--keep-per-job", type=int, default=0, help="Always keep each job's newest N runs.")
        parser.add_argument("--batch-size", type=int, default=5000)

    def handle(self, *args: Any, older_than: str, keep_per_job: int, batch_size: int, **options: Any) -> None:
        try:
            age = parse_age(older_than)
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        if keep_per_job < 0 or batch_size < 1:
            raise CommandError("--keep-per-job must be 0 or more and --batch-size at least 1.")
        deleted = delete_old_runs(older_than=age, keep_per_job=keep_per_job, batch_size=batch_size)
        self.stdout.write(f"Deleted {deleted} runs older than {older_than}.")
