"""Calendars in beat: a claimed fire that falls in a blackout window of one of its job's calendars
is not sent. With the job's ``blackout_policy`` ``skip`` it is recorded as a ``skipped`` run naming
the calendar; with ``defer`` too (saying when it runs), and the job's next fire becomes the
blackout's end, where it runs once (the fires between are never claimed).

Only the fires of jobs that name calendars cost anything: one query for their calendars'
``updated_at`` per claim, and the windows of a calendar that changed (``CalendarCache``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from datetime import datetime

from django.db import DatabaseError
from django.utils.translation import gettext as _

from calendars.models import Calendar
from calendars.selectors import calendar_windows
from calendars.windows import Blackout, WindowSpec, blackout_at, blackout_end
from jobs.models import Job
from runs.accounting import job_complete_if_fired
from scheduling import outbox
from scheduling.fires import Fire

logger = logging.getLogger(__name__)


class CalendarCache:
    """The windows of the calendars beat has met, kept until a calendar's ``updated_at`` moves."""

    def __init__(self) -> None:
        self._known: dict[int, tuple[datetime, list[WindowSpec]]] = {}

    def windows(self, ids: Iterable[int]) -> dict[int, list[WindowSpec]]:
        wanted = set(ids)
        stamps = dict(Calendar.objects.filter(pk__in=wanted).values_list("pk", "updated_at"))
        stale = [pk for pk, at in stamps.items() if pk not in self._known or self._known[pk][0] != at]
        if stale:
            self._known.update(calendar_windows(stale))
        for gone in wanted - set(stamps):
            self._known.pop(gone, None)
        return {pk: self._known[pk][1] for pk in stamps if pk in self._known}


def hold_back(fires: Sequence[Fire], *, now: datetime, cache: CalendarCache) -> list[Fire]:
    """The fires to send: those in no blackout. The others are recorded (skipped) here, in the
    claim's transaction, and a deferred job's next fire is moved to its blackout's end."""
    ids = {pk for fire in fires for pk in fire.calendars}
    if not ids:
        return list(fires)
    try:
        by_calendar = cache.windows(ids)
    except DatabaseError:
        raise  # the claim's transaction is gone: beat's outage handling
    except Exception:  # a calendar beat cannot read must not stop every claim: no blackout, said loudly
        logger.exception("blackouts: could not read the calendars %s; their fires go on", sorted(ids))
        return list(fires)
    kept: list[Fire] = []
    held: list[tuple[Fire, str]] = []
    # Jobs that share calendars and a fire time (a burst) share one look at the windows.
    seen: dict[tuple[tuple[int, ...], datetime], tuple[list[WindowSpec], Blackout | None]] = {}
    for fire in fires:
        key = (fire.calendars, fire.scheduled_for)
        if key not in seen:
            windows = [spec for pk in fire.calendars for spec in by_calendar.get(pk, ())]
            try:
                seen[key] = (windows, blackout_at(windows, fire.scheduled_for) if windows else None)
            except Exception:  # a window whose maths fails (a zone, a cron written around the services)
                logger.exception("blackouts: could not weigh job %s's fire against its calendars", fire.job_id)
                seen[key] = (windows, None)
        windows, blackout = seen[key]
        if blackout is None:
            kept.append(fire)
            continue
        if fire.blackout_policy == Job.BlackoutPolicy.DEFER:
            end = blackout_end(windows, blackout)
            # Row locked by the claim: its following fire is replaced by the one deferred run.
            Job.objects.filter(pk=fire.job_id).update(next_run_at=end)
            deferred = _("Blackout: %(reason)s; deferred: the job runs once at %(end)s.")
            held.append((fire, deferred % {"reason": blackout.reason, "end": end.isoformat()}))
        else:
            held.append((fire, _("Blackout: %(reason)s.") % {"reason": blackout.reason}))
    outbox.record_held(held, now=now)
    # A one-off whose one fire a blackout skipped has had its time, as one a misfire skipped.
    skipped = [fire.job_id for fire, _ in held if fire.blackout_policy != Job.BlackoutPolicy.DEFER]
    for job_id in Job.objects.filter(
        pk__in=skipped, trigger=Job.Trigger.DATE, status=Job.Status.ACTIVE, next_run_at__isnull=True
    ).values_list("pk", flat=True):
        job_complete_if_fired(job_id=job_id)
    return kept
