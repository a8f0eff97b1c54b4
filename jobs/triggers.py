"""Triggers: parsing cron expressions and computing when a job fires next.

Cron expressions are evaluated with cronsim (5 fields ``m h dom mon dow`` or 6 fields
``s m h dom mon dow``), in the job's own IANA time zone, so daylight-saving transitions follow
cron's rules: a time that does not exist that day fires once at the next valid time, a time
that exists twice fires once. Intervals are anchored on the previous nominal fire, never on
the moment the scheduler happened to wake, so they do not drift.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cron_descriptor import CasingTypeEnum, ExpressionDescriptor, Options
from cronsim import CronSim, CronSimError
from django.core.exceptions import ValidationError
from django.db import models
from django.utils.translation import gettext_lazy as _


class Trigger(models.TextChoices):
    """What makes a job fire: the one definition, which ``Job.Trigger`` is."""

    CRON = "cron", _("Cron expression")
    INTERVAL = "interval", _("Fixed interval")
    DATE = "date", _("Once at a date")
    MANUAL = "manual", _("Only by hand")


def get_zone(name: str) -> ZoneInfo:
    """The ZoneInfo for an IANA name, or ValidationError naming the problem."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValidationError(f"Unknown time zone {name!r}: use an IANA name such as 'Europe/Berlin'.") from None


def validate_cron(expr: str) -> None:
    """Raise ValidationError unless ``expr`` is a 5- or 6-field cron expression that fires."""
    fields = expr.split()
    if len(fields) not in (5, 6):
        raise ValidationError(
            f"A cron expression has 5 fields (minute hour day month weekday) or 6 with seconds "
            f"first; {expr!r} has {len(fields)}."
        )
    try:
        it = CronSim(expr, datetime(2000, 1, 1, tzinfo=UTC))
        next(it)
    except CronSimError as exc:
        raise ValidationError(f"Invalid cron expression {expr!r}: {exc}.") from None
    except StopIteration:
        raise ValidationError(f"The cron expression {expr!r} never fires.") from None


def cron_has_seconds(expr: str) -> bool:
    return len(expr.split()) == 6


def cron_fires_after(expr: str, zone: ZoneInfo, after: datetime) -> datetime | None:
    """The first fire strictly after ``after``, as an aware UTC datetime."""
    try:
        fire = next(CronSim(expr, after.astimezone(zone).replace(microsecond=0)))
    except StopIteration:
        return None
    return fire.astimezone(UTC)


def cron_preview(expr: str, zone: ZoneInfo, after: datetime, count: int) -> list[datetime]:
    """The next ``count`` fire times of a valid expression, in ``zone``."""
    it = CronSim(expr, after.astimezone(zone).replace(microsecond=0))
    fires: list[datetime] = []
    for fire in it:
        fires.append(fire)
        if len(fires) >= count:
            break
    return fires


def describe_cron(expr: str) -> str:
    """A valid expression in words: '*/10 * * * * *' is 'Every 10 seconds'."""
    options = Options()
    options.use_24hour_time_format = True
    options.casing_type = CasingTypeEnum.Sentence
    try:
        return ExpressionDescriptor(expr, options).get_description()
    except Exception:  # noqa: BLE001 - a description is a nicety; cronsim is the authority
        return expr


@dataclass(frozen=True)
class Schedule:
    """What a job's trigger fields say, enough to compute its fire times."""

    trigger: str
    cron: str = ""
    interval_seconds: int | None = None
    run_at: datetime | None = None
    timezone: str = "UTC"

    def first_fire(self, now: datetime) -> datetime | None:
        """When a job created (or resumed) at ``now`` fires first."""
        if self.trigger == Trigger.CRON:
            return cron_fires_after(self.cron, get_zone(self.timezone), now)
        if self.trigger == Trigger.INTERVAL and self.interval_seconds:
            return now.replace(microsecond=0) + timedelta(seconds=self.interval_seconds)
        if self.trigger == Trigger.DATE:
            return self.run_at
        return None

    def missed(self, previous: datetime, now: datetime, *, limit: int) -> list[datetime]:
        """The fires after ``previous`` up to ``now`` that ``next_fire`` passes over (beat fell
        behind), the latest ``limit`` of them, oldest first."""
        if self.trigger == Trigger.CRON:
            # Walked back from ``now``: after a day away, a once-a-second cron costs ``limit`` steps.
            zone = get_zone(self.timezone)
            fires: list[datetime] = []
            start = (now + timedelta(seconds=1)).astimezone(zone).replace(microsecond=0)
            for fire in CronSim(self.cron, start, reverse=True):
                at = fire.astimezone(UTC)
                if at <= previous or len(fires) == limit:
                    break
                if at <= now:
                    fires.append(at)
            return fires[::-1]
        if self.trigger == Trigger.INTERVAL and self.interval_seconds:
            step = timedelta(seconds=self.interval_seconds)
            count = math.floor((now - previous) / step)
            return [previous + step * n for n in range(max(1, count - limit + 1), count + 1)]
        return []

    def next_fire(self, previous: datetime, now: datetime) -> datetime | None:
        """The fire after the nominal fire ``previous``, never at or before ``now``.

        Fires missed while nothing was scheduling (beat down) are not replayed one by one: the
        one fire at ``previous`` stands for them, and the next is the first one in the future.
        """
        if self.trigger == Trigger.CRON:
            return cron_fires_after(self.cron, get_zone(self.timezone), max(previous, now))
        if self.trigger == Trigger.INTERVAL and self.interval_seconds:
            step = timedelta(seconds=self.interval_seconds)
            candidate = previous + step
            if candidate <= now:
                behind = (now - previous) / step
                candidate = previous + step * (math.floor(behind) + 1)
            return candidate
        return None  # date fires once; manual never
