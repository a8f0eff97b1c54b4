from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from django.core.management.base import BaseCommand, CommandParser

from jobs.importer import export_job
from jobs.models import Job


class Command(BaseCommand):
    help = "Write every job as a JSON (or YAML) list that import_jobs reads back. Header values are exported as stored."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--format", choices=["json", "yaml"], default="json")
        parser.add_argument("--output", "-o", type=Path, help="A file to write (default: standard output).")

    def handle(self, *args: Any, format: str, output: Path | None, **options: Any) -> None:
        jobs = [export_job(job) for job in Job.objects.order_by("id").iterator()]
        if format == "yaml":
            text = yaml.safe_dump(jobs, sort_keys=False, allow_unicode=True)
        else:
            text = json.dumps(jobs, indent=2, ensure_ascii=False) + "\n"
        if output:
            output.write_text(text)
            self.stderr.write(f"Exported {len(jobs)} jobs to {output}.")
        else:
            self.stdout.write(text, ending="")
