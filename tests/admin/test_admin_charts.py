"""The pictures: the job page's run strip and duration chart (runs.charts), the dashboard's runs per
hour with labelled axes (monitoring.dashboard), drawn on the server."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone

from monitoring.dashboard import chart_geometry
from runs import charts
from runs.models import Run
from runs.selectors import HourBar

START = datetime(2026, 12, 3, 22, 0, tzinfo=UTC)


def run(pk: int, status: str, ms: int | None, minutes: int) -> Run:
    moment = START + timedelta(minutes=minutes)
    return Run(id=pk, status=status, duration_ms=ms, started_at=moment, queued_at=moment)


def test_the_nearest_rank_percentile():
    values = list(range(1, 101))
    assert charts.percentile(values, 0.5) == 50
    assert charts.percentile(values, 0.95) == 95
    assert charts.percentile([7], 0.95) == 7


def test_the_strip_puts_the_oldest_run_left_coloured_as_its_badge():
    newest_first = [run(3, "failed", 10, 2), run(2, "success", 10, 1), run(1, "timeout", None, 0)]
    strip = charts.run_strip(newest_first)
    assert [c["pk"] for c in strip.cells] == [1, 2, 3]
    assert [c["colour"] for c in strip.cells] == ["#ef6c00", "#2e7d32", "#c62828"]
    assert strip.cells[0]["x"] < strip.cells[2]["x"]


def test_the_duration_chart_draws_p50_and_p95_and_labels_its_axes():
    runs = [run(i, "success", 100 + i * 10, i) for i in range(1, 21)] + [run(99, "running", None, 30)]
    with timezone.override(ZoneInfo("Asia/Shanghai")):
        chart = charts.duration_chart(runs)
    assert chart is not None
    assert chart["count"] == 20  # the run still going has no duration
    assert (chart["p50"]["value"], chart["p95"]["value"]) == (200, 290)
    assert chart["p95"]["y"] < chart["p50"]["y"]  # higher on the picture
    assert chart["first"] == "2026-12-04 06:01:00 CST"
    assert [t["label"] for t in chart["ticks"]] == ["0", "75", "150", "225", "300"]
    assert charts.duration_chart(runs[:1]) is None


def test_the_dashboard_chart_labels_hours_date_and_zone():
    bars = [HourBar(hour=START + timedelta(hours=h), success=h, failure=1) for h in range(24)]
    with timezone.override(ZoneInfo("Asia/Shanghai")):
        chart = chart_geometry(bars)
    assert chart["zone"] == "Asia/Shanghai"
    assert chart["columns"][0]["label"] == "06:00"
    assert chart["columns"][0]["date"] == "2026-12-04"
    assert [t["label"] for t in chart["ticks"]] == [0, 12, 24]
    assert chart["columns"][0]["title"] == "2026-12-04 06:00:00 CST: 0 succeeded, 1 failed"


@pytest.mark.django_db
def test_the_dashboard_lists_the_next_fires_and_refreshes(staff):
    from jobs import services

    services.job_create(data={"id": "soon", "interval_seconds": 60, "url": "http://127.0.0.1:9/"})
    page = staff.get("/admin/dashboard/").content.decode()
    assert '<meta http-equiv="refresh" content="30">' in page
    upcoming = page[page.index('id="upcoming"') :]
    assert "/admin/jobs/job/soon/change/" in upcoming
    assert 'id="ct-health-summary"' in page
