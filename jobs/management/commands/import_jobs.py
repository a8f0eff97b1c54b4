from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import CommandError, CommandParser
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop

from core import origin
from core.commands import TranslatedCommand
from core.progress import ProgressBar
from jobs.importer import ImportFormatError, add_tags, import_entries, load_entries
from jobs.tags import clean_tags

# What -v 2 prints for each entry, by its outcome (a dry run's in the conditional).
_DONE = {"created": gettext_noop("created"), "updated": gettext_noop("updated"), "unchanged": gettext_noop("unchanged")}
_WOULD = {
    "created": gettext_noop("would create"),
    "updated": gettext_noop("would update"),
    "unchanged": gettext_noop("unchanged"),
}


class Command(TranslatedCommand):
    help = gettext_noop(
        "Create or update jobs from a JSON or YAML list (the API's shape) or a crontab file, by id. "
        "Prints a one-line summary; -v 2 lists each job; exits 1 if any entry is invalid."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "file",
            type=Path,
            help=_("A .json or .yaml/.yml list of jobs (as export_jobs writes), or a crontab file (any other name)."),
        )
        parser.add_argument(
            "--dry-run", action="store_true", help=_("Check every entry and count; change nothing (-v 2 lists them).")
        )
        parser.add_argument(
            "--tag",
            action="append",
            default=[],
            metavar="TAG",
            help=_("Add this tag to every job imported, besides its own (repeat for more): --tag from-cron."),
        )

    def handle(self, *args: Any, file: Path, dry_run: bool, tag: list[str], verbosity: int, **options: Any) -> None:
        try:
            tags = clean_tags(tag)
        except ValidationError as exc:
            raise CommandError(f"--tag: {' '.join(exc.messages)}") from exc
        try:
            entries = add_tags(load_entries(file), tags)
        except (OSError, UnicodeDecodeError, ImportFormatError) as exc:
            raise CommandError(f"{file}: {exc}") from exc
        with (
            ProgressBar(self.stderr, len(entries), label=_("jobs")) as progress,
            origin.origin("import"),  # who the versions and the audit trail name: "import"
        ):
            summary = import_entries(entries, dry_run=dry_run, on_progress=progress.advance)
        if verbosity >= 2:
            words = _WOULD if dry_run else _DONE
            for outcome, job_id, label in summary.outcomes:
                where = f" ({label})" if label != job_id else ""
                self.stdout.write(f"{_(words[outcome])} {job_id}{where}")
        for invalid in summary.invalid:
            self.stderr.write(_("invalid %(where)s: %(reason)s") % {"where": invalid.label, "reason": invalid.reason})
        self.stdout.write((_("Dry run: ") if dry_run else "") + summary.line())
        if summary.invalid:
            sys.exit(1)
