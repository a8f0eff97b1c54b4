"""Container health checks: ``manage.py healthcheck beat`` (its heartbeat is fresh) or ``web``."""

from __future__ import annotations

import sys
from typing import Any

from django.core.management.base import CommandParser
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop

from core.commands import TranslatedCommand
from heartbeats.models import Heartbeat
from heartbeats.services import BEAT
from monitoring.health import BEAT_STALE_AFTER


class Command(TranslatedCommand):
    help = gettext_noop("Exit 0 if the part is healthy: 'beat' (a heartbeat in the last minute) or 'database'.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "part",
            choices=["beat", "database"],
            help=_("beat: its heartbeat is less than a minute old; database: a query answers."),
        )

    def handle(self, *args: Any, part: str, **options: Any) -> None:
        if part == "database":
            Heartbeat.objects.exists()
            self.stdout.write(_("database ok"))
            return
        beat = Heartbeat.objects.filter(name=BEAT).first()
        if beat is None or timezone.now() - beat.seen_at > BEAT_STALE_AFTER:
            self.stderr.write(_("beat: no recent heartbeat"))
            sys.exit(1)
        self.stdout.write(_("beat ok, last seen %(at)s") % {"at": beat.seen_at.isoformat()})
