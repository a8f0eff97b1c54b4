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
from dateutil.rrule import YEARLY, rrule, rrulestr  # type: ignore[import-untyped]  # no stubs installed
from django.core.exceptions import ValidationError
from django.utils import timezone
from django.utils.translation import gettext as _

from calendars.models import Calendar
from calendars.services import MAX_WINDOWS, calendar_add_windows, in_window_years
from jobs.triggers import get_zone

#: The most bytes of an .ics file read.
MAX_ICS_BYTES = 2 * 1024 * 1024
#: The most windows one repeating event gives (its first occurrences from now).
MAX_OCCURRENCES = 500
#: The most occurrences of a repeating event walked to reach now (a FREQ=SECONDLY rule that
#: started years ago would walk for ever): beyond that the event is skipped, named.
MAX_STEPS = 20_000
#: A repeating event starts no earlier (its occurrences are walked from its start).
MIN_RRULE_YEAR = 1900
DAY_FILTERS = ("bymonth", "bymonthday", "byyearday", "byweekno", "byweekday", "byeaster", "bynweekday")


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
        # One more than a calendar holds: an import that would pass it is refused (the service's
        # check), without expanding the rest first.
        room = MAX_WINDOWS + 1 - len(windows)
        if room <= 0:
            break
        try:
            spans = _event_spans(event, zone, horizon, limit=min(room, MAX_OCCURRENCES))
        except OverflowError:
            result.skipped.append(_("%(event)s: its dates are out of range") % {"event": name or _("an event")})
            continue
        except (ValueError, TypeError, KeyError) as exc:
            result.skipped.append(f"{name or _('an event')}: {exc}")
            continue
        if not all(in_window_years(start) and in_window_years(end) for start, end in spans):
            result.skipped.append(_("%(event)s: its dates are out of range") % {"event": name or _("an event")})
            continue
        windows += [{"name": name, "start": start, "end": end} for start, end in spans]
    result.added = calendar_add_windows(calendar=calendar, windows=windows, replace=replace)
    return result


def _event_spans(
    event: Any, zone: ZoneInfo, horizon: datetime, *, limit: int = MAX_OCCURRENCES
) -> list[tuple[datetime, datetime]]:
    """The event's spans: its own, or at most ``limit`` occurrences of its ``RRULE`` that end after
    now and start before ``horizon``, walked one at a time (never all materialised)."""
    start_value = event.decoded("DTSTART")
    if "DTEND" in event:
        end_value = event.decoded("DTEND")
    elif "DURATION" in event:
        end_value = start_value + event.decoded("DURATION")
    else:  # RFC 5545: a date lasts a day; a date-time, no time
        end_value = start_value + timedelta(days=1) if _is_date(start_value) else start_value
    start, end = _aware(start_value, zone), _aware(end_value, zone)
    if end <= start:
        raise ValueError(_("it has no length"))
    if "RRULE" not in event:
        return [(start, end)]
    length = end - start
    if start.year < MIN_RRULE_YEAR:
        raise ValueError(_("a repeating event must start in %(year)s or later") % {"year": MIN_RRULE_YEAR})
    rule = rrulestr(event["RRULE"].to_ical().decode(), dtstart=start)
    if isinstance(rule, rrule):
        if rule._count is None and (rule._until is None or rule._until > horizon):
            # Ends at the horizon: a rule whose filters match nothing is not searched up to year 9999.
            rule = rule.replace(until=horizon)
        if rule._freq != YEARLY and _no_day_before(rule, horizon):
            return []  # dateutil walks such a rule step by step to year 9999, never checking its end
    now = timezone.now()
    spans: list[tuple[datetime, datetime]] = []
    for steps, occurrence in enumerate(rule):
        if occurrence > horizon or len(spans) >= limit:
            break
        if occurrence + length > now:
            spans.append((occurrence, occurrence + length))
        elif steps >= MAX_STEPS:
            raise ValueError(_("it repeats too often: more than %(n)s occurrences before now") % {"n": MAX_STEPS})
    return spans


def _no_day_before(rule: Any, horizon: datetime) -> bool:
    """Whether no day before ``horizon`` passes the day filters of ``rule`` (not yearly): asked of
    a yearly rule with the same filters, which dateutil walks a year at a time."""
    given = rule._original_rule
    if not any(given.get(name) for name in DAY_FILTERS):
        return False  # every day passes
    days = rule.replace(
        freq=YEARLY, interval=1, count=None, until=horizon, byhour=None, byminute=None, bysecond=None, bysetpos=None
    )
    return next(iter(days), None) is None


def _is_date(value: object) -> bool:
    return isinstance(value, date) and not isinstance(value, datetime)


def _aware(value: date | datetime, zone: ZoneInfo) -> datetime:
    if _is_date(value):
        return datetime.combine(value, time(0), tzinfo=zone)
    if not isinstance(value, datetime):
        raise TypeError(_("not a date or date-time: %(value)r") % {"value": value})
    return value if timezone.is_aware(value) else value.replace(tzinfo=zone)
