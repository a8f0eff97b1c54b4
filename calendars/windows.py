"""The maths of blackout windows, on plain values (no database): whether a time falls in one of a
calendar's windows, and when the blackout that covers it ends."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from cronsim import CronSim

#: How many windows that follow one another a blackout's end is looked for across.
MAX_CHAINED = 50


@dataclass(frozen=True)
class WindowSpec:
    """One window of a calendar, as beat and the preview read it."""

    calendar: str
    name: str
    zone: ZoneInfo
    start: datetime | None = None  # a range: start, end (aware; end excluded)
    end: datetime | None = None
    cron: str = ""  # recurring: each fire of the cron in ``zone`` opens a window of ``duration``
    duration: timedelta = timedelta(0)

    def covering(self, at: datetime) -> Blackout | None:
        """The window occurrence that contains ``at``, if any."""
        if not self.cron:
            if self.start is not None and self.end is not None and self.start <= at < self.end:
                return Blackout(self.calendar, self.name, self.start, self.end)
            return None
        # The latest start at or before ``at``: an earlier one (same duration) ends sooner.
        begin = (at + timedelta(seconds=1)).astimezone(self.zone).replace(microsecond=0)
        start = next(CronSim(self.cron, begin, reverse=True), None)
        if start is None:
            return None
        opened = start.astimezone(UTC)
        if opened <= at < opened + self.duration:
            return Blackout(self.calendar, self.name, opened, opened + self.duration)
        return None


@dataclass(frozen=True)
class Blackout:
    """A window occurrence: which calendar's, and when it starts and ends (end excluded)."""

    calendar: str
    name: str
    start: datetime
    end: datetime

    @property
    def reason(self) -> str:
        what = f" ({self.name})" if self.name else ""
        return f"calendar '{self.calendar}'{what}, {self.start.isoformat()} to {self.end.isoformat()}"


def blackout_at(windows: Sequence[WindowSpec], at: datetime) -> Blackout | None:
    """The first window (in the order given) that contains ``at``."""
    for window in windows:
        found = window.covering(at)
        if found is not None:
            return found
    return None


def blackout_end(windows: Sequence[WindowSpec], blackout: Blackout) -> datetime:
    """When ``blackout`` and the windows that go on from it (overlapping or touching) end."""
    end = blackout.end
    for _ in range(MAX_CHAINED):
        following = blackout_at(windows, end)
        if following is None or following.end <= end:
            return end
        end = following.end
    return end
