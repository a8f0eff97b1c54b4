"""APScheduler-style ``trigger_args``, normalised to the canonical trigger fields.

Users coming from APScheduler services send ``{"trigger": "cron", "trigger_args": {...}}``.
This turns such input into ``cron`` / ``interval_seconds`` / ``run_at`` once, on the way in;
only the canonical fields are stored.

APScheduler's cron fields follow its own rules, kept here: fields coarser than the coarsest
one given default to ``*``, finer ones to their minimum (``{"hour": "9"}`` is 09:00:00), and
``day_of_week`` numbers count from Monday = 0 (cron counts from Sunday = 0).
"""

from __future__ import annotations

import re
from typing import Any

from django.core.exceptions import ValidationError
from django.utils.dateparse import parse_datetime

# Coarsest first, as APScheduler orders them; "second" is cron's optional sixth field.
CRON_ARGS = ("month", "day", "day_of_week", "hour", "minute", "second")
CRON_MINIMUM = {"month": "1", "day": "1", "day_of_week": "*", "hour": "0", "minute": "0", "second": "0"}
INTERVAL_ARGS = {"weeks": 604800, "days": 86400, "hours": 3600, "minutes": 60, "seconds": 1}
DATE_ARGS = ("run_date",)


def normalise_trigger_args(data: dict[str, Any]) -> dict[str, Any]:
    """Replace ``trigger_args`` in ``data`` by the canonical field it describes."""
    if "trigger_args" not in data:
        return data
    data = dict(data)
    args = data.pop("trigger_args")
    trigger = data.get("trigger")
    if not isinstance(args, dict):
        raise ValidationError({"trigger_args": "Must be a JSON object."})
    if trigger == "cron":
        data["cron"] = _cron_from_args(args)
    elif trigger == "interval":
        data["interval_seconds"] = _interval_from_args(args)
    elif trigger == "date":
        data["run_at"] = _date_from_args(args)
    else:
        raise ValidationError({"trigger_args": "Give trigger 'cron', 'interval' or 'date' with trigger_args."})
    return data


def _unknown(args: dict[str, Any], allowed: tuple[str, ...] | dict[str, int]) -> None:
    unknown = sorted(set(args) - set(allowed))
    if unknown:
        raise ValidationError({"trigger_args": f"Unsupported: {', '.join(unknown)}. Allowed: {', '.join(allowed)}."})


def _cron_from_args(args: dict[str, Any]) -> str:
    _unknown(args, CRON_ARGS)
    given = {name: str(value).strip() for name, value in args.items() if value is not None and str(value).strip()}
    if not given:
        raise ValidationError({"trigger_args": "Give at least one cron field."})
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


def _cron_weekdays(value: str) -> str:
    """APScheduler numbers weekdays mon=0..sun=6; cron sun=0..sat=6. Names pass through."""

    def day(token: str) -> int:
        return (int(token) + 1) % 7

    parts = []
    for term in value.split(","):
        step = re.fullmatch(r"\*/(\d+)", term)
        if step:
            parts += [str(day(str(n))) for n in range(0, 7, max(1, int(step.group(1))))]
        elif re.fullmatch(r"\d+", term):
            parts.append(str(day(term)))
        elif re.fullmatch(r"\d+-\d+", term):
            start, end = (int(t) for t in term.split("-"))
            parts += [str(day(str(n))) for n in range(start, end + 1)]
        else:
            parts.append(term)  # names (mon-fri), '*': the same in both
    return ",".join(parts)


def _interval_from_args(args: dict[str, Any]) -> int:
    _unknown(args, INTERVAL_ARGS)
    total = 0
    for name, value in args.items():
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise ValidationError({"trigger_args": f"{name} must be a number of {name}, at least 0."})
        total += value * INTERVAL_ARGS[name]
    if total < 1 or total != int(total):
        raise ValidationError({"trigger_args": "The interval must be a whole number of seconds, at least 1."})
    return int(total)


def _date_from_args(args: dict[str, Any]) -> Any:
    _unknown(args, DATE_ARGS)
    run_date = args.get("run_date")
    if not isinstance(run_date, str) or parse_datetime(run_date) is None:
        raise ValidationError({"trigger_args": "run_date must be an ISO 8601 date and time."})
    return run_date
