from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from django.core.management.base import CommandError, CommandParser
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop

from core.commands import TranslatedCommand
from jobs.importer import export_job
from jobs.models import Job


class Command(TranslatedCommand):
    help = gettext_noop(
        "Write every job as a JSON (or YAML) list that import_jobs reads back. Secrets (secret headers, "
        "kwargs, URL passwords and parameters) are masked unless --include-secrets."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--format", choices=["json", "yaml"], default="json", help=_("json (default) or yaml."))
        parser.add_argument(
            "--output", "-o", type=Path, help=_("A file to write, in a folder that exists (default: standard output).")
        )
        parser.add_argument(
            "--include-secrets",
            action="store_true",
            help=_(
                "Export secret values as stored (a backup to restore from). Masked otherwise: imported "
                "back onto the same jobs, a masked value keeps the stored one; a new job refuses it."
            ),
        )

    def handle(self, *args: Any, format: str, output: Path | None, include_secrets: bool, **options: Any) -> None:
        jobs = [export_job(job, include_secrets=include_secrets) for job in Job.objects.order_by("id").iterator()]
        if format == "yaml":
            text = yaml.safe_dump(jobs, sort_keys=False, allow_unicode=True)
        else:
            text = json.dumps(jobs, indent=2, ensure_ascii=False) + "\n"
        if output is None:
            self.stdout.write(text, ending="")
            return
        try:
            output.write_text(text)
        except OSError as exc:  # no such folder, a folder given, no permission, a full disk
            raise CommandError(
                _("Cannot write %(file)s: %(error)s.") % {"file": output, "error": exc.strerror or exc}
            ) from exc
        self.stderr.write(_("Exported %(n)d jobs to %(file)s.") % {"n": len(jobs), "file": output})
