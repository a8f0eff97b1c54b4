"""The admin dashboard: runs per hour (an inline SVG chart: no CDN), failure rates, slow jobs, health."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.admin.views.decorators import staff_member_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse

from monitoring.health import health_report
from runs import selectors
from runs.selectors import HourBar

CHART_WIDTH, CHART_HEIGHT, BAR_GAP = 720, 160, 4


@staff_member_required
def dashboard(request: HttpRequest) -> HttpResponse:
    if not request.user.has_perms(["jobs.view_job", "runs.view_run"]):  # it shows both
        raise PermissionDenied
    bars = selectors.runs_per_hour()
    healthy, health = health_report(show_hostnames=True)  # staff only
    context = {
        **admin.site.each_context(request),
        "title": "Dashboard",
        "chart": chart_geometry(bars),
        "totals": {"success": sum(b.success for b in bars), "failure": sum(b.failure for b in bars)},
        "failure_rates": selectors.failure_rates(),
        "slowest": selectors.slowest_jobs(),
        "running": selectors.running_now(),
        "healthy": healthy,
        "health": {name: part for name, part in health.items() if name != "status"},
    }
    return TemplateResponse(request, "admin/dashboard.html", context)


def chart_geometry(bars: list[HourBar]) -> dict[str, Any]:
    """Rectangles of a stacked bar chart (success below, failure above), in SVG units."""
    peak = max([b.success + b.failure for b in bars] + [1])
    width = CHART_WIDTH / max(len(bars), 1)
    columns = []
    for index, bar in enumerate(bars):
        success_h = CHART_HEIGHT * bar.success / peak
        failure_h = CHART_HEIGHT * bar.failure / peak
        x = index * width + BAR_GAP / 2
        columns.append(
            {
                "x": round(x, 1),
                "w": round(width - BAR_GAP, 1),
                "success_y": round(CHART_HEIGHT - success_h, 1),
                "success_h": round(success_h, 1),
                "failure_y": round(CHART_HEIGHT - success_h - failure_h, 1),
                "failure_h": round(failure_h, 1),
                "label": f"{bar.hour:%H}h",
                "title": f"{bar.hour:%Y-%m-%d %H}:00 — {bar.success} ok, {bar.failure} failed",
                "label_x": round(x + (width - BAR_GAP) / 2, 1),
            }
        )
    return {"width": CHART_WIDTH, "height": CHART_HEIGHT, "peak": peak, "columns": columns}
