"""The admin dashboard: the jobs' health, runs per hour (an inline SVG chart: no CDN), the next
fires, failure rates, slow jobs, what is running, beat and worker health. It reloads itself."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.contrib import admin
from django.contrib.admin.views.decorators import staff_member_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.translation import gettext as _

from core import times
from monitoring.health import health_report
from runs import selectors
from runs.selectors import HourBar

CHART_WIDTH, CHART_HEIGHT, BAR_GAP = 720, 160, 4
LEFT, BOTTOM = 40, 40  # room for the axes' labels
REFRESH_SECONDS = 30
UPCOMING = 20


@staff_member_required
def dashboard(request: HttpRequest) -> HttpResponse:
    if not request.user.has_perms(["jobs.view_job", "runs.view_run"]):  # it shows both
        raise PermissionDenied
    bars = selectors.runs_per_hour()
    healthy, health = health_report(show_hostnames=True)  # staff only
    context = {
        **admin.site.each_context(request),
        "title": _("Dashboard"),
        "chart": chart_geometry(bars),
        "totals": {"success": sum(b.success for b in bars), "failure": sum(b.failure for b in bars)},
        "failure_rates": selectors.failure_rates(),
        "slowest": selectors.slowest_jobs(),
        "running": selectors.running_now(),
        "upcoming": selectors.upcoming_fires(limit=UPCOMING),
        "healthy": healthy,
        "health": {name: _shown_part(part) for name, part in health.items() if name != "status"},
        "refresh_seconds": REFRESH_SECONDS,
        "shown_at": timezone.now(),
    }
    return TemplateResponse(request, "admin/dashboard.html", context)


def _shown_part(part: dict[str, Any]) -> dict[str, Any]:
    """A part of the health report, its ``last_seen`` (ISO text: the API's) as a time to show."""
    seen = part.get("last_seen")
    return {**part, "last_seen_at": datetime.fromisoformat(seen)} if isinstance(seen, str) else part


def chart_geometry(bars: list[HourBar]) -> dict[str, Any]:
    """Rectangles of a stacked bar chart (success below, failure above), in SVG units, with the
    axes: runs on the left (0, half and the peak), hours below (every third, the date where a day
    starts and at the first bar), in the request's zone."""
    peak = max([b.success + b.failure for b in bars] + [1])
    plot_w = CHART_WIDTH - LEFT
    width = plot_w / max(len(bars), 1)
    columns = []
    for index, bar in enumerate(bars):
        hour = timezone.localtime(bar.hour)
        success_h = CHART_HEIGHT * bar.success / peak
        failure_h = CHART_HEIGHT * bar.failure / peak
        x = LEFT + index * width + BAR_GAP / 2
        columns.append(
            {
                "x": round(x, 1),
                "w": round(width - BAR_GAP, 1),
                "success_y": round(CHART_HEIGHT - success_h, 1),
                "success_h": round(success_h, 1),
                "failure_y": round(CHART_HEIGHT - success_h - failure_h, 1),
                "failure_h": round(failure_h, 1),
                "label": f"{hour:%H}:00" if index % 3 == 0 else "",
                "date": f"{hour:%Y-%m-%d}" if index == 0 or hour.hour == 0 else "",
                "title": _("%(hour)s: %(ok)d succeeded, %(failed)d failed")
                % {"hour": times.format_time(hour), "ok": bar.success, "failed": bar.failure},
                "label_x": round(x + (width - BAR_GAP) / 2, 1),
            }
        )
    ticks = [{"y": round(CHART_HEIGHT - CHART_HEIGHT * k / 2, 1), "label": round(peak * k / 2)} for k in range(3)]
    zone = timezone.get_current_timezone()
    return {
        "width": CHART_WIDTH,
        "height": CHART_HEIGHT,
        "full_height": CHART_HEIGHT + BOTTOM,
        "left": LEFT,
        "peak": peak,
        "columns": columns,
        "ticks": ticks,
        "zone": getattr(zone, "key", str(zone)),
    }
