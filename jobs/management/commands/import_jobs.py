from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from core import origin
from jobs.importer import ImportFormatError, import_entries, load_entries


class Command(BaseCommand):
    help = "Create or update jobs from a JSON or YAML list (the API's shape) or a crontab file, by id."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", type=Path)
        parser.add_argument("--dry-run", action="store_true", help="Check and count; change nothing.")

    def handle(self, *args: Any, file: Path, dry_run: bool, **options: Any) -> None:
        try:
            entries = load_entries(file)
        except (OSError, ImportFormatError) as exc:
            raise CommandError(f"{file}: {exc}") from exc
        progress = _Progress(len(entries)) if sys.stderr.isatty() and len(entries) >= 50 else None
        with origin.origin("import"):  # the versions it records say so
            summary = import_entries(entries, dry_run=dry_run, on_progress=progress)
        if progress:
            progress.done()
        for invalid in summary.invalid:
            self.stderr.write(f"invalid {invalid.label}: {invalid.reason}")
        self.stdout.write(("Dry run: " if dry_run else "") + summary.line())
        if summary.invalid:
            sys.exit(1)


class _Progress:
    """A one-line progress bar on the terminal (only when attached to one)."""

    WIDTH = 40

    def __init__(self, total: int) -> None:
        self.total = total
        self.count = 0

    def __call__(self) -> None:
        self.count += 1
        if self.count % max(1, self.total // 200) == 0 or self.count == self.total:
            filled = self.WIDTH * self.count // self.total
            sys.stderr.write(f"\r[{'#' * filled}{'.' * (self.WIDTH - filled)}] {self.count}/{self.total}")
            sys.stderr.flush()

    def done(self) -> None:
        sys.stderr.write("\n")
