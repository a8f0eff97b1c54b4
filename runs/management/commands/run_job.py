from __future__ import annotations

import json
import sys
from typing import Any

from django.core.management.base import CommandError, CommandParser
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop

from core import origin
from core.commands import TranslatedCommand
from jobs.models import Job
from runs.execution import run_in_foreground


class Command(TranslatedCommand):
    help = gettext_noop("Run a job now, in this process, and print the run (exit 1 unless it succeeded).")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("job_id", help=_("The id of the job to run."))

    def handle(self, *args: Any, job_id: str, **options: Any) -> None:
        job = Job.objects.filter(pk=job_id).first()
        if job is None:
            raise CommandError(_("No job %(id)r.") % {"id": job_id})
        with origin.origin("command"):  # who the audit trail names: "command"
            run = run_in_foreground(job=job)
        self.stdout.write(
            _("run %(run)s of %(job)s: %(status)s in %(ms)s ms (%(target)s)")
            % {"run": run.pk, "job": job.pk, "status": run.status, "ms": run.duration_ms, "target": run.target}
        )
        for label, value in (
            (_("status code"), run.status_code),
            (_("exit code"), run.exit_code),
            (_("result"), json.dumps(run.result) if run.result is not None else None),
            (_("error"), run.error),
            (_("response body"), run.response_body),
            (_("output"), run.output),
            (_("log"), run.log_output),
        ):
            if value not in (None, ""):
                self.stdout.write(f"{label}: {value}")
        if run.status != "success":
            sys.exit(1)
