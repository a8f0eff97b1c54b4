"""Every write to a calendar goes through here (the API, the admin, the .ics import): one
validation path for a calendar and its windows, and ``updated_at`` bumped with each change so
that beat reloads the calendar (``scheduling.blackouts``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from calendars.models import MAX_DURATION_SECONDS, Calendar, Window
from calendars.selectors import jobs_using
from jobs.triggers import get_zone, validate_cron

CALENDAR_FIELDS = ("name", "description", "time_zone")
WINDOW_FIELDS = ("kind", "name", "start", "end", "cron", "duration_seconds")
#: Windows a calendar holds at most: each fire of a job naming it looks through them.
MAX_WINDOWS = 2000
#: The years a range window's start and end fall in (in UTC).
WINDOW_YEARS = (1970, 2200)


@transaction.atomic
def calendar_create(*, data: Mapping[str, Any]) -> Calendar:
    calendar = Calendar()
    _apply(calendar, data, partial=False)
    return calendar


@transaction.atomic
def calendar_update(*, calendar: Calendar, data: Mapping[str, Any], partial: bool = True) -> Calendar:
    calendar = Calendar.objects.select_for_update().get(pk=calendar.pk)
    _apply(calendar, data, partial=partial)
    return calendar


@transaction.atomic
def calendar_delete(*, calendar: Calendar) -> None:
    """Refused while jobs name the calendar: they would lose a blackout without a version saying so.
    Under the calendar's lock, so a job saved at the same time naming it is seen here or refused there."""
    calendar = Calendar.objects.select_for_update().get(pk=calendar.pk)
    users = jobs_using(calendar.pk)
    if users:
        shown = ", ".join(users[:10]) + (
            ngettext(" and %(n)d more", " and %(n)d more", len(users) - 10) % {"n": len(users) - 10}
            if len(users) > 10
            else ""
        )
        raise ValidationError(
            {"calendar": _("Used by the jobs %(jobs)s: take it out of them first.") % {"jobs": shown}}
        )
    calendar.delete()


@transaction.atomic
def calendar_add_windows(*, calendar: Calendar, windows: Sequence[Mapping[str, Any]], replace: bool = False) -> int:
    """Add ``windows`` (the API's shape) to the calendar, or replace its windows with them."""
    calendar = Calendar.objects.select_for_update().get(pk=calendar.pk)
    made = _windows(calendar, windows)
    existing = 0 if replace else calendar.windows.count()
    if existing + len(made) > MAX_WINDOWS:
        raise ValidationError({"windows": _("At most %(n)d windows a calendar.") % {"n": MAX_WINDOWS}})
    if replace:
        calendar.windows.all().delete()
    Window.objects.bulk_create(made)
    calendar.save(update_fields=["updated_at"])
    return len(made)


def _apply(calendar: Calendar, data: Mapping[str, Any], *, partial: bool) -> None:
    unknown = sorted(set(data) - {*CALENDAR_FIELDS, "windows"})
    if unknown:
        raise ValidationError({name: _("Unknown field.") for name in unknown})
    for name in CALENDAR_FIELDS:
        if name in data:
            setattr(calendar, name, data[name])
    calendar.full_clean(validate_unique=True)  # the time zone's check is the field's (models)
    windows = None
    if "windows" in data or not partial:
        windows = _windows(calendar, data.get("windows") or [])
        if len(windows) > MAX_WINDOWS:
            raise ValidationError({"windows": _("At most %(n)d windows a calendar.") % {"n": MAX_WINDOWS}})
    calendar.save()
    if windows is not None:
        calendar.windows.all().delete()
        for window in windows:
            window.calendar = calendar
        Window.objects.bulk_create(windows)


def _windows(calendar: Calendar, items: object) -> list[Window]:
    if not isinstance(items, list | tuple):
        raise ValidationError({"windows": _("A list of windows.")})
    made, errors = [], {}
    zone = get_zone(calendar.time_zone)
    for n, item in enumerate(items):
        try:
            made.append(window_prepare(item, zone=zone, calendar=calendar))
        except ValidationError as exc:
            if hasattr(exc, "error_dict"):
                errors[f"windows[{n}]"] = "; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items())
            else:
                errors[f"windows[{n}]"] = " ".join(exc.messages)
    if errors:
        raise ValidationError({"windows": [f"{where}: {problem}" for where, problem in errors.items()]})
    return made


def window_prepare(item: object, *, zone: Any, calendar: Calendar | None = None) -> Window:
    """A valid, unsaved window from the API's shape: ``{"start", "end"}`` (ISO datetimes; one
    without an offset is read in the calendar's zone) or ``{"cron", "duration_seconds"}``."""
    if not isinstance(item, Mapping):
        raise ValidationError(_("A window is an object."))
    unknown = sorted(set(item) - set(WINDOW_FIELDS) - {"id"})
    if unknown:
        raise ValidationError(_("Unknown field(s): %(names)s.") % {"names": ", ".join(unknown)})
    kind = item.get("kind") or (Window.Kind.RECURRING if item.get("cron") else Window.Kind.RANGE)
    window = Window(calendar=calendar, kind=kind, name=str(item.get("name") or "")[:200])
    if kind == Window.Kind.RANGE:
        window.start = _when(item.get("start"), zone, "start")
        window.end = _when(item.get("end"), zone, "end")
        if window.end <= window.start:
            raise ValidationError(_("end: must be after start."))
        if item.get("cron") or item.get("duration_seconds") is not None:
            raise ValidationError(_("A range window has start and end, not cron or duration_seconds."))
    elif kind == Window.Kind.RECURRING:
        cron = item.get("cron")
        duration = item.get("duration_seconds")
        if not isinstance(cron, str) or not cron.strip():
            raise ValidationError(_("cron: required for a recurring window."))
        try:
            validate_cron(cron)
        except ValidationError as exc:
            raise ValidationError(f"cron: {' '.join(exc.messages)}") from None
        if not isinstance(duration, int) or isinstance(duration, bool) or not 1 <= duration <= MAX_DURATION_SECONDS:
            message = _("duration_seconds: a whole number of seconds, 1 to %(max)d.")
            raise ValidationError(message % {"max": MAX_DURATION_SECONDS})
        if item.get("start") or item.get("end"):
            raise ValidationError(_("A recurring window has cron and duration_seconds, not start or end."))
        window.cron, window.duration_seconds = cron.strip(), duration
    else:
        raise ValidationError(_("kind: 'range' or 'recurring', not %(kind)r.") % {"kind": kind})
    return window


def _when(value: object, zone: Any, field: str) -> datetime:
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str) and value:
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            message = _("%(field)s: not an ISO 8601 date-time: %(value)r.")
            raise ValidationError(message % {"field": field, "value": value}) from None
    else:
        raise ValidationError(_("%(field)s: required for a range window.") % {"field": field})
    if timezone.is_naive(parsed):
        parsed = parsed.replace(tzinfo=zone)
    if not in_window_years(parsed):
        first, last = WINDOW_YEARS
        message = _("%(field)s: a date-time in the years %(first)s to %(last)s (UTC), not %(value)s.")
        raise ValidationError(message % {"field": field, "first": first, "last": last, "value": f"{value!s:.40}"})
    return parsed


def in_window_years(at: datetime) -> bool:
    """Whether ``at`` (aware) falls in WINDOW_YEARS once in UTC (the database's range is no wider
    than a datetime's, and 9999-12-31T23:00-05:00 is past both)."""
    try:
        year = at.astimezone(UTC).year
    except OverflowError:
        return False
    return WINDOW_YEARS[0] <= year <= WINDOW_YEARS[1]
