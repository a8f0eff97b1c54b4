"""Reads that more than one entry point needs (API, admin)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.utils import timezone as dj_timezone

from jobs.triggers import cron_preview, describe_cron, get_zone


def cron_preview_data(*, expr: str, timezone: str, count: int, after: datetime | None = None) -> dict[str, Any]:
    """The next ``count`` fires of a valid cron expression after ``after`` (default: now), in its
    zone, and the expression in words."""
    fires = cron_preview(expr, get_zone(timezone), after or dj_timezone.now(), count)
    return {
        "expr": expr,
        "timezone": timezone,
        "description": describe_cron(expr),
        "next_fire_times": [fire.isoformat() for fire in fires],
    }
