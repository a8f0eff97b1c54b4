"""Reads of calendars that other apps need."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from calendars.models import Calendar
from calendars.windows import WindowSpec
from jobs.models import Job
from jobs.triggers import get_zone


def unknown_calendar_ids(ids: Iterable[int]) -> list[int]:
    """The ids among ``ids`` that name no calendar (jobs.validators asks this)."""
    wanted = set(ids)
    known = set(Calendar.objects.filter(pk__in=wanted).values_list("pk", flat=True))
    return sorted(wanted - known)


def jobs_using(calendar_id: int) -> list[str]:
    """The ids of the jobs that name the calendar. Read in Python: JSON containment has no
    SQLite lookup, and a calendar is deleted rarely."""
    rows = Job.objects.exclude(calendars=[]).values_list("pk", "calendars").iterator(chunk_size=2000)
    return [job_id for job_id, ids in rows if isinstance(ids, list) and calendar_id in ids]


def calendar_windows(calendar_ids: Iterable[int]) -> dict[int, tuple[datetime, list[WindowSpec]]]:
    """Each calendar's ``updated_at`` and windows, as the maths reads them (``calendars.windows``)."""
    found: dict[int, tuple[datetime, list[WindowSpec]]] = {}
    calendars = Calendar.objects.filter(pk__in=set(calendar_ids)).prefetch_related("windows")
    for calendar in calendars:
        zone = get_zone(calendar.time_zone)
        specs = [
            WindowSpec(
                calendar=calendar.name,
                name=w.name,
                zone=zone,
                start=w.start,
                end=w.end,
                cron=w.cron,
                duration=timedelta(seconds=w.duration_seconds or 0),
            )
            for w in calendar.windows.all()
        ]
        found[calendar.pk] = (calendar.updated_at, specs)
    return found
