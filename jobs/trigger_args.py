"""APScheduler-style ``trigger_args``, normalised to the canonical trigger fields.

Users coming from APScheduler services send ``{"trigger": "cron", "trigger_args": {...}}``.
This turns such input into ``cron`` / ``interval_seconds`` / ``run_at`` once, on the way in;
only the canonical fields are stored.

APScheduler's cron fields follow its own rules, kept here: fields coarser than the coarsest
one given default to ``*``, finer ones to their minimum (``{"hour": "9"}`` is 09:00:00), and
``day_of_week`` numbers count from Monday = 0 (cron counts from Sunday = 0). A naive
``run_date`` is read in the job's time zone, as APScheduler reads it in the trigger's.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils.dateparse import parse_datetime
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop

from jobs.models import MAX_INTERVAL_SECONDS
from jobs.triggers import get_zone

# Coarsest first, as APScheduler orders them; "second" is cron's optional sixth field.
CRON_ARGS = ("month", "day", "day_of_week", "hour", "minute", "second")
CRON_MINIMUM = {"month": "1", "day": "1", "day_of_week": "*", "hour": "0", "minute": "0", "second": "0"}
INTERVAL_ARGS = {"weeks": 604800, "days": 86400, "hours": 3600, "minutes": 60, "seconds": 1}
DATE_ARGS = ("run_date",)
# The canonical field each trigger's trigger_args stand for.
CANONICAL_FIELDS = {"cron": "cron", "interval": "interval_seconds", "date": "run_at"}

# APScheduler's weekday names, in its numbering (mon = 0); cron reads the same names.
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_DAY = "[0-6]|" + "|".join(WEEKDAYS)
# One term of a day_of_week list. Only single digits 0-6 and names match, so no input can make
# the expansion below build more than seven days (``0-999999999`` once built a billion).
_WEEKDAY_TERM = re.compile(
    rf"(?:(?P<all>\*)|(?P<start>{_DAY})(?:-(?P<end>{_DAY}))?)(?:/(?P<step>\d{{1,3}}))?", re.IGNORECASE
)
_WEEKDAY_HELP = gettext_noop(
    "use 0-6 (Monday is 0) or mon-sun: one day, a range (mon-fri, 0-4), */step, or a list of these"
)
# A cron field given as a JSON number: any real one is small; a 5000-digit int cannot even be str()-ed.
_MAX_CRON_NUMBER = 10**6


def normalise_trigger_args(data: dict[str, Any], *, default_timezone: str | None = None) -> dict[str, Any]:
    """Replace ``trigger_args`` in ``data`` by the canonical field it describes.

    A naive ``run_date`` is read in ``data["timezone"]``, else ``default_timezone`` (the job's
    current zone, on an update), else ``settings.TIME_ZONE``.
    """
    if "trigger_args" not in data:
        return data
    data = dict(data)
    args = data.pop("trigger_args")
    trigger = data.get("trigger")
    if not isinstance(args, dict):
        raise ValidationError({"trigger_args": _("Must be a JSON object.")})
    field = CANONICAL_FIELDS.get(trigger) if isinstance(trigger, str) else None
    if field is None:
        raise ValidationError({"trigger_args": _("Give trigger 'cron', 'interval' or 'date' with trigger_args.")})
    # Both given: one would silently replace the other, and the client could not tell which won.
    if data.get(field) not in (None, ""):
        raise ValidationError(
            {"trigger_args": _("Give one of %(field)s or trigger_args, not both.") % {"field": field}}
        )
    if trigger == "cron":
        data["cron"] = _cron_from_args(args)
    elif trigger == "interval":
        data["interval_seconds"] = _interval_from_args(args)
    else:
        data["run_at"] = _date_from_args(args, data.get("timezone") or default_timezone or settings.TIME_ZONE)
    return data


def _unknown(args: dict[str, Any], allowed: tuple[str, ...] | dict[str, int]) -> None:
    unknown = sorted(str(name) for name in set(args) - set(allowed))
    if unknown:
        message = _("Unsupported: %(unknown)s. Allowed: %(allowed)s.")
        raise ValidationError(
            {"trigger_args": message % {"unknown": ", ".join(unknown), "allowed": ", ".join(allowed)}}
        )


def _cron_from_args(args: dict[str, Any]) -> str:
    _unknown(args, CRON_ARGS)
    given = {}
    for name, value in args.items():
        text = _cron_text(name, value)
        if text:
            given[name] = text
    if not given:
        raise ValidationError({"trigger_args": _("Give at least one cron field.")})
    coarsest = min(CRON_ARGS.index(name) for name in given)
    fields = {}
    for index, name in enumerate(CRON_ARGS):
        default = "*" if index < coarsest else CRON_MINIMUM[name]
        fields[name] = given.get(name, default)
    if "day_of_week" in given:
        fields["day_of_week"] = _cron_weekdays(fields["day_of_week"])
    if fields["day"].lower() == "last":
        fields["day"] = "L"
    five = " ".join(fields[name] for name in ("minute", "hour", "day", "month", "day_of_week"))
    return f"{fields['second']} {five}" if "second" in given else five


def _cron_text(name: str, value: Any) -> str:
    """A cron field's text: given as text, or as a (small) whole number; None or blank is not given."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) < _MAX_CRON_NUMBER:
        return str(value)
    raise ValidationError(
        {"trigger_args": _("%(name)s must be text such as '*/5' or a whole number.") % {"name": name}}
    )


def _cron_weekdays(value: str) -> str:
    """APScheduler numbers weekdays mon=0..sun=6; cron sun=0..sat=6. Names mean the same in both."""
    parts = []
    for term in value.split(","):
        match = _WEEKDAY_TERM.fullmatch(term.strip())
        if match is None:
            raise ValidationError(
                {
                    "trigger_args": _("day_of_week: %(term)r is not a weekday; %(help)s.")
                    % {"term": term.strip()[:40], "help": _(_WEEKDAY_HELP)}
                }
            )
        step = int(match["step"]) if match["step"] is not None else None
        if step == 0:
            raise ValidationError({"trigger_args": _("day_of_week: a step must be at least 1, not 0.")})
        if match["all"]:
            start, end = 0, 6
        else:
            start = _weekday_index(match["start"])
            end = _weekday_index(match["end"]) if match["end"] else start
            if start > end:
                raise ValidationError(
                    {
                        "trigger_args": _(
                            "day_of_week: %(term)r runs backwards (%(start)s-%(end)s); "
                            "give a range from the earlier day, mon first."
                        )
                        % {"term": term.strip(), "start": WEEKDAYS[start], "end": WEEKDAYS[end]}
                    }
                )
            if step is not None and not match["end"]:
                message = _("day_of_week: a step goes with * or a range, not %(term)r.")
                raise ValidationError({"trigger_args": message % {"term": term}})
        if step is None and (match["all"] or not any(char.isdigit() for char in term)):
            parts.append(term.strip().lower())  # '*', 'mon', 'mon-fri': the same in cron
        else:
            parts += [str((day + 1) % 7) for day in range(start, end + 1, step or 1)]
    return ",".join(parts)


def _weekday_index(token: str) -> int:
    return int(token) if token.isdigit() else WEEKDAYS.index(token.lower())


def _interval_from_args(args: dict[str, Any]) -> int:
    _unknown(args, INTERVAL_ARGS)
    total: int | float = 0
    for name, value in args.items():
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise ValidationError(
                {"trigger_args": _("%(name)s must be a number of %(name)s, at least 0.") % {"name": name}}
            )
        # Before multiplying: 1e308 weeks overflows to inf, and int(inf) raises.
        if isinstance(value, float) and not math.isfinite(value):
            raise ValidationError({"trigger_args": _("%(name)s must be a finite number.") % {"name": name}})
        if value > MAX_INTERVAL_SECONDS / INTERVAL_ARGS[name]:
            raise ValidationError({"trigger_args": _too_long()})
        total += value * INTERVAL_ARGS[name]
    if total > MAX_INTERVAL_SECONDS:
        raise ValidationError({"trigger_args": _too_long()})
    if total < 1 or total != int(total):
        raise ValidationError({"trigger_args": _("The interval must be a whole number of seconds, at least 1.")})
    return int(total)


def _too_long() -> str:
    return _("The interval must be at most %(n)d seconds.") % {"n": MAX_INTERVAL_SECONDS}


def _date_from_args(args: dict[str, Any], zone_name: Any) -> datetime:
    _unknown(args, DATE_ARGS)
    run_date = args.get("run_date")
    try:
        parsed = parse_datetime(run_date) if isinstance(run_date, str) else None
    except ValueError:  # well formed but no such moment: February 30th
        parsed = None
    if parsed is None:
        raise ValidationError({"trigger_args": _("run_date must be an ISO 8601 date and time.")})
    if parsed.tzinfo is None:
        # Compared with "now" later, a naive value raised TypeError (a 500); the job's zone is
        # what the user meant, as for its cron.
        parsed = parsed.replace(tzinfo=_zone(zone_name))
    try:
        return parsed.astimezone(UTC)
    except OverflowError:  # 9999-12-31T23:59:59-12:00 is in the year 10000 in UTC
        raise ValidationError({"trigger_args": _("run_date is out of range.")}) from None


def _zone(name: Any) -> ZoneInfo:
    if not isinstance(name, str):
        raise ValidationError({"timezone": _("Must be an IANA time zone name such as 'Europe/Berlin'.")})
    try:
        return get_zone(name)
    except ValidationError as exc:
        raise ValidationError({"timezone": exc.messages}) from None
