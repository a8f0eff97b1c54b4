"""``manage.py import_holidays CALENDAR FILE.ics [--replace]``: a holiday list into a calendar."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import CommandError, CommandParser
from django.db import transaction
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop

from calendars.ics import import_ics
from calendars.models import Calendar
from calendars.services import calendar_create
from core.commands import TranslatedCommand


class Command(TranslatedCommand):
    help = gettext_noop(
        "Import the events of an iCalendar (.ics) file as blackout windows of a calendar (made if missing)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("calendar", help=_("The calendar's name (created if there is none) or id."))
        parser.add_argument("file", type=Path)
        parser.add_argument("--replace", action="store_true", help=_("Replace the calendar's windows."))
        parser.add_argument("--time-zone", default=None, help=_("For a calendar made here (default TIME_ZONE)."))

    def handle(self, *args: Any, calendar: str, file: Path, replace: bool, time_zone: str | None, **opts: Any) -> None:
        try:
            content = file.read_bytes()
        except OSError as exc:
            raise CommandError(_("Cannot read %(file)s: %(error)s") % {"file": file, "error": exc}) from None
        try:
            # One transaction: a file refused leaves no calendar made for it, and no window.
            with transaction.atomic():
                found = Calendar.objects.filter(name=calendar).first()
                if found is None and calendar.isdigit():
                    found = Calendar.objects.filter(pk=int(calendar)).first()
                if found is None:
                    zone = {"time_zone": time_zone} if time_zone else {}
                    found = calendar_create(data={"name": calendar, **zone})
                result = import_ics(calendar=found, content=content, replace=replace)
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from None
        self.stdout.write(
            _("%(calendar)s: %(added)d window(s) added, %(skipped)d event(s) skipped")
            % {"calendar": found.name, "added": result.added, "skipped": len(result.skipped)}
            + ("".join("\n  " + _("skipped %(event)s") % {"event": s} for s in result.skipped))
        )
