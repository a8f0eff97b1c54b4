"""Holidays from an iCalendar (.ics) file: each event becomes a range window of the calendar.

An all-day event (``DTSTART;VALUE=DATE``) covers its days in the calendar's time zone, from
midnight to midnight after its last day; a timed one its own start and end. An event that repeats
(``RRULE``) gives a window per occurrence within ``years`` years from now (ahead of the import:
past holidays matter to no fire). Parsed by the ``icalendar`` library.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import icalendar
from dateutil.rrule import rrulestr  # type: ignore[import-untyped]  # no stubs installed
from django.core.exceptions import ValidationError
from django.utils import timezone
from django.utils.translation import gettext as _

from calendars.models import Calendar
from calendars.services import calendar_add_windows
from jobs.triggers import get_zone

#: The most bytes of an .ics file read.
MAX_ICS_BYTES = 2 * 1024 * 1024


@dataclass
class IcsResult:
    added: int = 0
    skipped: list[str] = field(default_factory=list)


def import_ics(*, calendar: Calendar, content: bytes, replace: bool = False, years: int = 3) -> IcsResult:
    """Add the file's events to ``calendar`` as windows (through ``calendar_add_windows``)."""
    if len(content) > MAX_ICS_BYTES:
        raise ValidationError({"file": _("At most %(n)d KiB.") % {"n": MAX_ICS_BYTES // 1024}})
    try:
        parsed = icalendar.Calendar.from_ical(content)
    except (ValueError, KeyError, IndexError) as exc:
        raise ValidationError({"file": _("Not an iCalendar file: %(error)s") % {"error": exc}}) from None
    zone = get_zone(calendar.time_zone)
    horizon = timezone.now() + timedelta(days=366 * years)
    result = IcsResult()
    windows: list[dict[str, Any]] = []
    for event in parsed.walk("VEVENT"):
        name = str(event.get("SUMMARY", "") or "")[:200]
        try:
            spans = _event_spans(event, zone, horizon)
        except (ValueError, TypeError, KeyError) as exc:
            result.skipped.append(f"{name or _('an event')}: {exc}")
            continue
        windows += [{"name": name, "start": start, "end": end} for start, end in spans]
    result.added = calendar_add_windows(calendar=calendar, windows=windows, replace=replace)
    return result


def _event_spans(event: Any, zone: ZoneInfo, horizon: datetime) -> list[tuple[datetime, datetime]]:
    start_value = event.decoded("DTSTART")
    if "DTEND" in event:
        end_value = event.decoded("DTEND")
    elif "DURATION" in event:
        end_value = start_value + event.decoded("DURATION")
    else:  # RFC 5545: a date lasts a day; a date-time, no time
        end_value = start_value + timedelta(days=1) if _is_date(start_value) else start_value
    start, end = _aware(start_value, zone), _aware(end_value, zone)
    if end <= start:
        raise ValueError("it has no length")
    if "RRULE" not in event:
        return [(start, end)]
    length = end - start
    rule = rrulestr(event["RRULE"].to_ical().decode(), dtstart=start)
    now = timezone.now()
    return [(s, s + length) for s in rule.between(now - length, horizon, inc=True)][:500]


def _is_date(value: object) -> bool:
    return isinstance(value, date) and not isinstance(value, datetime)


def _aware(value: date | datetime, zone: ZoneInfo) -> datetime:
    if _is_date(value):
        return datetime.combine(value, time(0), tzinfo=zone)
    if not isinstance(value, datetime):
        raise TypeError(f"not a date or date-time: {value!r}")
    return value if timezone.is_aware(value) else value.replace(tzinfo=zone)
