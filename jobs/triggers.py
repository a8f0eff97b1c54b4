"""Triggers: parsing cron expressions and computing when a job fires next.

Cron expressions are evaluated with cronsim (5 fields ``m h dom mon dow`` or 6 fields
``s m h dom mon dow``), in the job's own IANA time zone, so daylight-saving transitions follow
cron's rules: a time that does not exist that day fires once at the next valid time, a time
that exists twice fires once. A job's ``dst_policy`` may change both for a cron that names its
minute and hour (``DstPolicy``). Intervals are anchored on the previous nominal fire, never on
the moment the scheduler happened to wake, so they do not drift.

A job's jitter moves every fire by the same offset, derived from the job's id (``jitter_offset``):
the schedule's maths work on the nominal fires and add the offset, so a fire stored as
``next_run_at`` is the moved one and the one after it is computed from it minus the offset.
"""

from __future__ import annotations

import bisect
import hashlib
import math
import re
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cron_descriptor import CasingTypeEnum, ExpressionDescriptor, Options
from cronsim import CronSim, CronSimError
from django.core.exceptions import ValidationError
from django.db import models
from django.utils import translation
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from jobs.memo import memo_table


class Trigger(models.TextChoices):
    """What makes a job fire: the one definition, which ``Job.Trigger`` is."""

    CRON = "cron", _("Cron expression")
    INTERVAL = "interval", _("Fixed interval")
    DATE = "date", _("Once at a date")
    MANUAL = "manual", _("Only by hand")


class DstPolicy(models.TextChoices):
    """What a cron that names its minute and hour does on the days a daylight-saving change skips
    or repeats its wall-clock time: ``<spring forward>_<fall back>``."""

    SHIFT_ONCE = "shift_once", _("Missing time: run at the next valid time; repeated time: run once")
    SKIP_ONCE = "skip_once", _("Missing time: do not run; repeated time: run once")
    SHIFT_TWICE = "shift_twice", _("Missing time: run at the next valid time; repeated time: run twice")
    SKIP_TWICE = "skip_twice", _("Missing time: do not run; repeated time: run twice")


#: The most a job's fires may be moved by jitter.
MAX_JITTER_SECONDS = 3600
#: How far before a time a DST-aware walk starts: more than any zone's DST change (2 h at most).
_DST_MARGIN = timedelta(hours=3)


def jitter_offset(job_id: str, jitter_seconds: int | None) -> int:
    """The job's stable offset in [0, jitter_seconds): the same for the same id on every process
    and every run (a hash, not ``hash()``, which Python salts per process)."""
    if not jitter_seconds or jitter_seconds <= 0:
        return 0
    digest = hashlib.sha256(job_id.encode()).digest()
    return int.from_bytes(digest[:8], "big") % jitter_seconds


def dst_policy_applies(expr: str) -> bool:
    """Whether a cron's DST policy matters: 5 fields whose minute and hour are not wildcards (a
    time of day). Others (``*/15 * * * *``, 6 fields) tick by real time as standard cron does: a
    wall time that does not exist is not reached, and one that occurs twice fires at each."""
    fields = expr.split()
    return len(fields) == 5 and not fields[0].startswith("*") and not fields[1].startswith("*")


def shortest_gap(expr: str, zone: ZoneInfo, *, fires: int = 1000, span: timedelta = timedelta(days=400)) -> float:
    """The shortest time in seconds between two consecutive fires of a valid cron, among its first
    ``fires`` after 2001-01-01 (within ``span``): what a jitter must stay under so that the fires
    keep their order. ``math.inf`` for a cron that fires at most once in that span."""
    start = datetime(2001, 1, 1, tzinfo=zone)
    shortest = math.inf
    previous: datetime | None = None
    for count, fire in enumerate(CronSim(expr, start)):
        at = fire.astimezone(UTC)
        if previous is not None:
            shortest = min(shortest, (at - previous).total_seconds())
        if count >= fires or at - start > span:
            break
        previous = at
    return shortest


def get_zone(name: str) -> ZoneInfo:
    """The ZoneInfo for an IANA name, or ValidationError naming the problem."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        message = gettext("Unknown time zone %(name)r: use an IANA name such as 'Europe/Berlin'.")
        raise ValidationError(message % {"name": name}) from None


def validate_cron(expr: str) -> None:
    """Raise ValidationError unless ``expr`` is a 5- or 6-field cron expression that fires."""
    fields = expr.split()
    if len(fields) not in (5, 6):
        raise ValidationError(
            gettext(
                "A cron expression has 5 fields (minute hour day month weekday) or 6 with seconds first; "
                "%(expr)r has %(n)d."
            )
            % {"expr": expr, "n": len(fields)}
        )
    try:
        it = CronSim(expr, datetime(2000, 1, 1, tzinfo=UTC))
        next(it)
    except CronSimError as exc:
        raise ValidationError(
            gettext("Invalid cron expression %(expr)r: %(error)s.") % {"expr": expr, "error": exc}
        ) from None
    except StopIteration:
        raise ValidationError(gettext("The cron expression %(expr)r never fires.") % {"expr": expr}) from None


def cron_has_seconds(expr: str) -> bool:
    return len(expr.split()) == 6


def cron_fires_after(expr: str, zone: ZoneInfo, after: datetime) -> datetime | None:
    """The first fire strictly after ``after``, as an aware UTC datetime.

    Within a bulk call (``jobs.memo``), a fire found from ``since`` is the answer for any later
    ``after`` before it: the cron has none between. Only when the zone's offset is the same at
    both ends and they are less than a day apart: no DST change between them, so the wall clock
    the cron is read on moves as time does."""
    start = after.astimezone(zone).replace(microsecond=0)
    table = memo_table("cron_fire")
    if table is not None:
        kept = table.get((expr, zone))
        if kept is not None:
            since, fire = kept
            if since <= start < fire and start.utcoffset() == since.utcoffset():
                return fire.astimezone(UTC)
    try:
        fire = next(CronSim(expr, start))
    except StopIteration:
        return None
    if table is not None and fire - start < timedelta(days=1) and fire.utcoffset() == start.utcoffset():
        table[(expr, zone)] = (start, fire)
    return fire.astimezone(UTC)


def cron_fires(expr: str, zone: ZoneInfo, after: datetime, policy: str = DstPolicy.SHIFT_ONCE) -> Iterator[datetime]:
    """The fires strictly after ``after``, in order, as aware UTC datetimes, under a DST policy.

    cronsim's own handling (Debian cron's) is ``shift_once``: a time of day that does not exist
    fires at the first valid minute after, one that occurs twice fires at its first occurrence.
    ``skip_*`` drops a fire that cronsim moved (its wall time is not one the cron names);
    ``*_twice`` adds the second occurrence of a repeated wall time. The walk starts a few hours
    early so that a second occurrence after ``after`` whose first one is before it is found.
    """
    start = after.astimezone(zone).replace(microsecond=0)
    if policy == DstPolicy.SHIFT_ONCE or not dst_policy_applies(expr):
        for fire in CronSim(expr, start):
            yield fire.astimezone(UTC)
        return
    skip, twice = policy.startswith("skip"), policy.endswith("twice")
    sim = CronSim(expr, start - _DST_MARGIN)
    pending: list[datetime] = []  # second occurrences not yet given, in order
    for fire in sim:
        at = fire.astimezone(UTC)
        while pending and pending[0] <= at:
            second = pending.pop(0)
            if second > after and second != at:
                yield second
        if twice:
            repeated = fire.replace(fold=1)
            if repeated.utcoffset() != fire.utcoffset():
                bisect.insort(pending, repeated.astimezone(UTC))
        if skip and (fire.hour not in sim.hours or fire.minute not in sim.minutes):
            continue  # cronsim moved it from a wall time that does not exist that day
        if at > after:
            yield at


def cron_preview(expr: str, zone: ZoneInfo, after: datetime, count: int) -> list[datetime]:
    """The next ``count`` fire times of a valid expression, in ``zone``."""
    it = CronSim(expr, after.astimezone(zone).replace(microsecond=0))
    fires: list[datetime] = []
    for fire in it:
        fires.append(fire)
        if len(fires) >= count:
            break
    return fires


# cron-descriptor's Chinese catalogue leaves the names of days and months in English.
_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
           "November", "December")  # fmt: skip
_ZH_NAMES = {
    **dict(zip(_DAYS, ("星期一", "星期二", "星期三", "星期四", "星期五", "星期六", "星期日"), strict=True)),
    **{name: f"{n}月" for n, name in enumerate(_MONTHS, 1)},
}
_ZH_NAME = re.compile(r"\b(" + "|".join(_ZH_NAMES) + r")\b")


def describe_cron(expr: str) -> str:
    """A valid expression in words, in the active language: '*/10 * * * * *' is 'Every 10 seconds'
    ('每 10 秒' in Chinese)."""
    options = Options()
    options.use_24hour_time_format = True
    options.casing_type = CasingTypeEnum.Sentence
    chinese = (translation.get_language() or "").lower().startswith("zh")
    if chinese:
        options.locale_code = "zh_CN"
    try:
        described = ExpressionDescriptor(expr, options).get_description()
    except Exception:  # noqa: BLE001 - a description is a nicety; cronsim is the authority
        return expr
    return _ZH_NAME.sub(lambda m: _ZH_NAMES[m.group(1)], described) if chinese else described


@dataclass(frozen=True)
class Schedule:
    """What a job's trigger fields say, enough to compute its fire times."""

    trigger: str
    cron: str = ""
    interval_seconds: int | None = None
    run_at: datetime | None = None
    timezone: str = "UTC"
    #: The job's jitter offset in seconds (``jitter_offset``): every fire is moved by it.
    offset_seconds: int = 0
    dst_policy: str = DstPolicy.SHIFT_ONCE

    @property
    def offset(self) -> timedelta:
        return timedelta(seconds=self.offset_seconds)

    def cron_fire_after(self, after: datetime) -> datetime | None:
        """The first (moved) cron fire strictly after ``after``."""
        if self.dst_policy == DstPolicy.SHIFT_ONCE and not self.offset_seconds:
            return cron_fires_after(self.cron, get_zone(self.timezone), after)  # the common case, as before
        fire = next(cron_fires(self.cron, get_zone(self.timezone), after - self.offset, self.dst_policy), None)
        return None if fire is None else fire + self.offset

    def fires(self, after: datetime) -> Iterator[datetime]:
        """The (moved) fires strictly after ``after``, in order: a cron's, or an interval's counted
        from ``after`` (a job created then); a date's run_at if it is later. What a preview lists."""
        if self.trigger == Trigger.CRON:
            for fire in cron_fires(self.cron, get_zone(self.timezone), after - self.offset, self.dst_policy):
                yield fire + self.offset
        elif self.trigger == Trigger.INTERVAL and self.interval_seconds:
            first = self.first_fire(after)
            step = timedelta(seconds=self.interval_seconds)
            while first is not None:
                yield first
                first += step
        elif self.trigger == Trigger.DATE and self.run_at is not None and self.run_at > after:
            yield self.run_at

    def first_fire(self, now: datetime) -> datetime | None:
        """When a job created (or resumed) at ``now`` fires first."""
        if self.trigger == Trigger.CRON:
            return self.cron_fire_after(now)
        if self.trigger == Trigger.INTERVAL and self.interval_seconds:
            return now.replace(microsecond=0) + timedelta(seconds=self.interval_seconds) + self.offset
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
            start = (now - self.offset + timedelta(seconds=1)).astimezone(zone).replace(microsecond=0)
            for fire in CronSim(self.cron, start, reverse=True):
                at = fire.astimezone(UTC) + self.offset
                if at <= previous or len(fires) == limit:
                    break
                if at <= now:
                    fires.append(at)
            if self.dst_policy == DstPolicy.SHIFT_ONCE or not dst_policy_applies(self.cron):
                return fires[::-1]
            # The walk back found where the latest ``limit`` begin; the policy's fires from there on.
            # (Fewer than ``limit`` found: all since ``previous``, a repeated time's second one too.)
            begin = max(previous, fires[-1] - _DST_MARGIN) if len(fires) == limit else previous
            kept: deque[datetime] = deque(maxlen=limit)
            for fire in cron_fires(self.cron, zone, begin - self.offset, self.dst_policy):
                if fire + self.offset > now:
                    break
                kept.append(fire + self.offset)
            return list(kept)
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
            return self.cron_fire_after(max(previous, now))
        if self.trigger == Trigger.INTERVAL and self.interval_seconds:
            step = timedelta(seconds=self.interval_seconds)
            candidate = previous + step
            if candidate <= now:
                behind = (now - previous) / step
                candidate = previous + step * (math.floor(behind) + 1)
            return candidate
        return None  # date fires once; manual never
