"""Times as a person reads them in the admin: one format everywhere, with seconds and the zone.

``2026-12-03 05:25:10 UTC`` in the zone of the request (the staff user's display zone, activated by
``monitoring.middleware.DisplayTimezoneMiddleware``, else ``TIME_ZONE``), or in a zone given (a
job's own). Beside it, how far away it is: "in 8 s", "3 min ago". The API keeps ISO 8601 with the
offset; only what a person reads goes through here.
"""

from __future__ import annotations

from datetime import datetime, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.translation import gettext as _

#: The one format of a time shown in the admin (Django's DATETIME_FORMAT says the same: see
#: crontask/formats/). The zone's abbreviation follows (UTC, CET, CST, +04).
FORMAT = "%Y-%m-%d %H:%M:%S"
EMPTY = "—"


def zone_named(name: str | None) -> tzinfo:
    """The zone of that IANA name; the current one for an empty or unknown name."""
    if name:
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            pass
    return timezone.get_current_timezone()


def zone_label(moment: datetime, zone: tzinfo | None = None) -> str:
    """The zone's abbreviation at that moment (UTC, CET, CST, +04)."""
    local = moment.astimezone(zone or timezone.get_current_timezone())
    return local.tzname() or str(zone)


def format_time(moment: datetime | None, zone: tzinfo | None = None) -> str:
    """``2026-12-03 05:25:10 UTC``: the moment in ``zone`` (default: the request's), with its label."""
    if moment is None:
        return EMPTY
    local = moment.astimezone(zone or timezone.get_current_timezone())
    return f"{local.strftime(FORMAT)} {local.tzname() or ''}".rstrip()


def relative_words() -> dict[str, str]:
    """The words of a relative time, translated: ``relative`` uses them, and the page hands them to
    ``times.js``, which keeps the relative times fresh in the same words."""
    return {
        "now": _("now"),
        "s": _("%(n)d s"),
        "min": _("%(n)d min"),
        "h": _("%(n)d h"),
        "d": _("%(n)d d"),
        "in": _("in %(amount)s"),
        "ago": _("%(amount)s ago"),
    }


def relative(moment: datetime, now: datetime | None = None) -> str:
    """How far from now: "in 8 s", "3 min ago", "in 2 h", "5 d ago", "now"."""
    words = relative_words()
    seconds = round((moment - (now or timezone.now())).total_seconds())
    span = abs(seconds)
    if span < 1:
        return words["now"]
    if span < 60:
        amount = words["s"] % {"n": span}
    elif span < 3600:
        amount = words["min"] % {"n": span // 60}
    elif span < 86400 * 2:
        amount = words["h"] % {"n": span // 3600}
    else:
        amount = words["d"] % {"n": span // 86400}
    return (words["in"] if seconds > 0 else words["ago"]) % {"amount": amount}


def time_html(moment: datetime | None, zone: tzinfo | None = None, *, with_relative: bool = True) -> SafeString:
    """The moment as HTML: the absolute time, its relative one beside it (kept fresh by
    ``crontask/static/crontask/times.js``), the ISO time with offset as the tooltip."""
    if moment is None:
        return format_html("{}", EMPTY)
    absolute = format_time(moment, zone)
    if not with_relative:
        return format_html('<time datetime="{}" title="{}">{}</time>', moment.isoformat(), _iso(moment, zone), absolute)
    return format_html(
        '<time class="ct-time" datetime="{}" title="{}">{}</time> <span class="ct-rel" data-at="{}">({})</span>',
        moment.isoformat(),
        _iso(moment, zone),
        absolute,
        moment.isoformat(),
        relative(moment),
    )


def _iso(moment: datetime, zone: tzinfo | None) -> str:
    local = moment.astimezone(zone or timezone.get_current_timezone())
    return f"{local.isoformat()} ({getattr(local.tzinfo, 'key', local.tzname())})"
