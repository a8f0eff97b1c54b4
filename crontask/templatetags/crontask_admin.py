"""Template filters and tags of the admin pages: times (core.times) and the jobs' health at a glance."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django import template
from django.utils.html import json_script
from django.utils.safestring import SafeString
from django.utils.translation import pgettext_lazy

from core import times
from core.admin_utils import badge
from core.status_words import STATUS_WORDS
from runs import health

register = template.Library()

#: What a job version records (jobs.JobVersion.Action), in the request's language.
ACTION_WORDS = {
    "create": pgettext_lazy("version action", "create"),
    "update": pgettext_lazy("version action", "update"),
    "delete": pgettext_lazy("version action", "delete"),
    "restore": pgettext_lazy("version action", "restore"),
    "revert": pgettext_lazy("version action", "revert"),
}


@register.filter
def when(moment: datetime | None) -> SafeString:
    """``2026-12-03 05:25:10 UTC (3 min ago)`` in the request's display zone."""
    return times.time_html(moment)


@register.filter
def abstime(moment: datetime | None) -> str:
    """``2026-12-03 05:25:10 UTC`` in the request's display zone."""
    return times.format_time(moment)


@register.filter
def in_zone(moment: datetime | None, zone: str) -> SafeString:
    """The moment in the named zone (a job's own), with its relative time."""
    return times.time_html(moment, times.zone_named(zone))


@register.simple_tag
def relative_words() -> SafeString:
    """The words of relative times for ``times.js`` (a JSON script element)."""
    return json_script(times.relative_words(), "ct-relative-words")


@register.filter
def status_word(status: str) -> str:
    """A status (of a job, run or health state) in the request's language, as its badge says it."""
    return str(STATUS_WORDS.get(status, status))


#: The words of the health report (monitoring.health, the API's /api/health/ in English) as the
#: dashboard shows them; an error it does not know (an exception's name) is shown as it is.
HEALTH_WORDS = {
    "database": pgettext_lazy("health", "database"),
    "broker": pgettext_lazy("health", "broker"),
    "beat": pgettext_lazy("health", "beat"),
    "workers": pgettext_lazy("health", "workers"),
    "ok": pgettext_lazy("health", "ok"),
    "error": pgettext_lazy("health", "error"),
    "database unavailable": pgettext_lazy("health", "database unavailable"),
    "beat has never run": pgettext_lazy("health", "beat has never run"),
    "no heartbeat for over a minute": pgettext_lazy("health", "no heartbeat for over a minute"),
    "no worker heartbeat in the last minute": pgettext_lazy("health", "no worker heartbeat in the last minute"),
}


@register.filter
def health_word(word: str) -> str:
    return str(HEALTH_WORDS.get(word, word))


@register.filter
def action_word(action: str) -> str:
    return str(ACTION_WORDS.get(action, action))


@register.filter
def run_badge(status: str) -> SafeString:
    """A run status as its coloured badge."""
    return badge(status)


@register.filter
def health_badge(state: str) -> SafeString:
    return badge(health.COLOURS_KEY.get(state, state), str(health.LABELS.get(state, state)))


@register.inclusion_tag("admin/health_summary.html")
def health_summary(limit: int = 10) -> dict[str, Any]:
    """Counts of jobs per health state, and the failing jobs first (the admin index and dashboard)."""
    return {"counts": health.health_counts(), "failing": health.failing_jobs(limit=limit)}
