"""The pictures of a job's page, drawn on the server as inline SVG (no CDN, no script): a strip of
its last runs coloured by status, and their durations over time with the p50 and p95 lines."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from django.utils.translation import gettext as _

from core import times
from core.admin_utils import STATUS_COLOURS
from runs.models import Run

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
STRIP_RUNS = 50
CELL, CELL_GAP, STRIP_HEIGHT = 14, 2, 22
CHART_WIDTH, CHART_HEIGHT = 720, 180
LEFT, BOTTOM, TOP, RIGHT = 56, 34, 10, 70  # room for the axes' labels


def percentile(values: list[int], share: float) -> int:
    """The nearest-rank percentile (the alert rules' p95 too): the smallest value with at least
    ``share`` of the values at or below it."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


@dataclass
class Strip:
    cells: list[dict[str, Any]] = field(default_factory=list)
    width: int = 0
    height: int = STRIP_HEIGHT


def run_strip(runs: list[Run]) -> Strip:
    """Oldest on the left, newest on the right: one cell per run, coloured as its badge."""
    cells = []
    for index, run in enumerate(reversed(runs)):
        moment = run.started_at or run.queued_at
        cells.append(
            {
                "x": index * (CELL + CELL_GAP),
                "colour": STATUS_COLOURS.get(run.status, "#616161"),
                "title": f"{_('run')} {run.pk}: {run.status} — {times.format_time(moment)}",
                "pk": run.pk,
            }
        )
    return Strip(cells=cells, width=max(len(cells) * (CELL + CELL_GAP), 1))


def duration_chart(runs: list[Run]) -> dict[str, Any] | None:
    """Durations of the finished runs over time (a point each, coloured by status) with the p50 and
    p95 lines, the axes labelled (ms; start time in the request's zone). None with under 2 points."""
    points = [r for r in runs if r.duration_ms is not None and r.started_at is not None]
    if len(points) < 2:
        return None
    points.sort(key=lambda r: r.started_at or _EPOCH)
    durations = [r.duration_ms or 0 for r in points]
    p50, p95 = percentile(durations, 0.5), percentile(durations, 0.95)
    peak = max(max(durations), 1)
    first, last = points[0].started_at or _EPOCH, points[-1].started_at or _EPOCH  # never None: filtered above
    span = max((last - first).total_seconds(), 1.0)
    plot_w, plot_h = CHART_WIDTH - LEFT - RIGHT, CHART_HEIGHT - TOP - BOTTOM

    def y(ms: float) -> float:
        return round(TOP + plot_h - plot_h * ms / peak, 1)

    dots = [
        {
            "x": round(LEFT + plot_w * (((r.started_at or first) - first).total_seconds() / span), 1),
            "y": y(r.duration_ms or 0),
            "colour": STATUS_COLOURS.get(r.status, "#616161"),
            "title": f"{_('run')} {r.pk}: {r.duration_ms} ms, {r.status} — {times.format_time(r.started_at)}",
        }
        for r in points
    ]
    path = " ".join(f"{'M' if i == 0 else 'L'}{d['x']},{d['y']}" for i, d in enumerate(dots))
    ticks = [{"y": y(peak * k / 4), "label": f"{round(peak * k / 4)}"} for k in range(5)]
    return {
        "width": CHART_WIDTH,
        "height": CHART_HEIGHT,
        "left": LEFT,
        "right": CHART_WIDTH - RIGHT,
        "top": TOP,
        "bottom": TOP + plot_h,
        "dots": dots,
        "path": path,
        "ticks": ticks,
        "p50": {"y": y(p50), "value": p50},
        "p95": {"y": y(p95), "value": p95},
        "first": times.format_time(first),
        "last": times.format_time(last),
        "count": len(points),
    }
