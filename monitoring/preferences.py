"""Staff display preferences: read by the middleware on each admin request, set from their page."""

from __future__ import annotations

import zoneinfo
from functools import lru_cache
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _

from monitoring.models import DisplayPreference


@lru_cache(maxsize=1)
def zone_names() -> list[str]:
    """Every IANA zone name this machine knows, sorted (the choice list of the preference page)."""
    return sorted(zoneinfo.available_timezones())


def display_zone_of(user: Any) -> str:
    """The zone the user chose, else ``TIME_ZONE``."""
    chosen = (
        DisplayPreference.objects.filter(user_id=user.pk).values_list("timezone", flat=True).first()
        if user is not None and user.is_authenticated
        else None
    )
    return chosen or settings.TIME_ZONE


def display_zone_set(*, user: Any, timezone: str) -> DisplayPreference:
    """Record the user's display zone; empty means the server's ``TIME_ZONE``."""
    timezone = timezone.strip()
    if timezone and timezone not in zone_names():
        raise ValidationError(
            {"timezone": _("Unknown time zone %(name)r: use an IANA name such as Asia/Shanghai.") % {"name": timezone}}
        )
    preference, _created = DisplayPreference.objects.update_or_create(user=user, defaults={"timezone": timezone})
    return preference
