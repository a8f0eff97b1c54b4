from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import CommandError, CommandParser
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop

from audit.services import audit_prune
from core.commands import TranslatedCommand


class Command(TranslatedCommand):
    help = gettext_noop("Delete audit entries older than a number of days (CRONTASK_AUDIT_RETENTION_DAYS by default).")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--older-than-days",
            type=int,
            default=None,
            metavar="N",
            help=_("Delete entries older than N days (at least 1; default: CRONTASK_AUDIT_RETENTION_DAYS)."),
        )

    def handle(self, *args: Any, older_than_days: int | None, **options: Any) -> None:
        days = settings.CRONTASK_AUDIT_RETENTION_DAYS if older_than_days is None else older_than_days
        if days < 1:
            raise CommandError(_("--older-than-days must be at least 1."))
        removed = audit_prune(older_than_days=days)
        self.stdout.write(_("Pruned %(n)d audit entries older than %(days)d days.") % {"n": removed, "days": days})
