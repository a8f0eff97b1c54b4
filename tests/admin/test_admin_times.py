"""Times in the admin: one format with seconds and the zone (core.times), the staff user's display
zone (monitoring: preference + middleware), a one-off's date read in the job's zone, and the API
unchanged (ISO 8601 with the offset)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone

from core import times
from jobs import services
from jobs.models import Job
from monitoring.models import DisplayPreference

SHANGHAI = ZoneInfo("Asia/Shanghai")
MOMENT = datetime(2026, 12, 3, 5, 25, 10, 123456, tzinfo=UTC)


def test_it_formats_with_seconds_and_the_zone():
    assert times.format_time(MOMENT, UTC) == "2026-12-03 05:25:10 UTC"
    assert times.format_time(MOMENT, SHANGHAI) == "2026-12-03 13:25:10 CST"
    assert times.format_time(None) == "—"
    with timezone.override(SHANGHAI):
        assert times.format_time(MOMENT) == "2026-12-03 13:25:10 CST"


@pytest.mark.parametrize(
    ("offset", "expected"),
    [
        (timedelta(seconds=8), "in 8 s"),
        (-timedelta(minutes=3, seconds=5), "3 min ago"),
        (timedelta(hours=5), "in 5 h"),
        (-timedelta(days=3), "3 d ago"),
        (timedelta(milliseconds=200), "now"),
    ],
)
def test_relative_times(offset, expected):
    assert times.relative(MOMENT + offset, now=MOMENT) == expected


def test_the_html_carries_the_iso_time_and_the_relative_one():
    html = times.time_html(MOMENT, SHANGHAI)
    assert "2026-12-03 13:25:10 CST" in html
    assert 'datetime="2026-12-03T05:25:10.123456+00:00"' in html
    assert "2026-12-03T13:25:10.123456+08:00 (Asia/Shanghai)" in html
    assert 'class="ct-rel"' in html


@pytest.mark.django_db
def test_the_display_zone_is_the_users_and_only_the_admins(staff, admin_user, api):
    job = services.job_create(data={"id": "z", "interval_seconds": 60, "url": "http://127.0.0.1:9/"})
    page = staff.get("/admin/jobs/job/").content.decode()
    assert "Times in UTC" in page
    assert " UTC" in page
    response = staff.post("/admin/preferences/", {"timezone": "Asia/Shanghai", "next": "/admin/jobs/job/"})
    assert response.status_code == 302
    assert response["Location"] == "/admin/jobs/job/"
    assert DisplayPreference.objects.get(user=admin_user).timezone == "Asia/Shanghai"
    page = staff.get("/admin/jobs/job/").content.decode()
    assert "Times in Asia/Shanghai" in page
    shown = timezone.localtime(job.next_run_at, SHANGHAI).strftime("%Y-%m-%d %H:%M:%S CST")
    assert shown in page
    # The API answers as before: ISO 8601 with the server's offset, whoever asks.
    given = api.get("/api/jobs/z/").json()["next_run_at"]
    assert datetime.fromisoformat(given).utcoffset() == timedelta(0)


@pytest.mark.django_db
def test_an_unknown_zone_is_refused_on_the_page(staff):
    page = staff.post("/admin/preferences/", {"timezone": "Mars/Olympus"}).content.decode()
    assert "Unknown time zone" in page
    assert not DisplayPreference.objects.exists()


@pytest.mark.django_db
def test_a_one_offs_date_is_entered_in_the_jobs_zone(staff):
    day = (timezone.now() + timedelta(days=2)).astimezone(SHANGHAI).date()
    staff.post("/admin/preferences/", {"timezone": "America/New_York"})  # the reader's zone is another
    response = staff.post(
        "/admin/jobs/job/add/",
        {
            "id": "once", "kind": "http", "trigger": "date", "timezone": "Asia/Shanghai",
            "run_at_0": day.isoformat(), "run_at_1": "09:30:15", "url": "http://127.0.0.1:9/", "method": "GET",
            "headers": "{}", "handler_kwargs": "{}", "timeout_seconds": 10, "max_retries": 0,
            "retry_backoff_seconds": 10, "concurrency_policy": "allow", "status": "active", "follow_redirects": "on",
            "jitter_seconds": 0, "dst_policy": "shift_once", "blackout_policy": "skip",
            "alertrulelink_set-TOTAL_FORMS": 0, "alertrulelink_set-INITIAL_FORMS": 0,
        },
    )  # fmt: skip
    assert response.status_code == 302, response.content.decode()[:3000]
    job = Job.objects.get(pk="once")
    assert job.run_at == datetime.combine(day, datetime.min.time(), SHANGHAI).replace(hour=9, minute=30, second=15)
    page = staff.get("/admin/jobs/job/once/change/").content.decode()
    assert 'value="09:30:15"' in page  # shown back in the job's zone, not the reader's
    assert "in the job&#x27;s time zone:" in page


@pytest.mark.django_db
def test_a_database_error_reading_the_zone_leaves_the_answer_to_the_view(staff, monkeypatch):
    """The view meets a database that is down too and answers 503; the middleware must not 500 first."""
    from django.db import OperationalError

    def down(user):
        raise OperationalError("the database is restarting")

    monkeypatch.setattr("monitoring.middleware.display_zone_of", down)
    page = staff.get("/admin/jobs/job/")
    assert page.status_code == 200
    assert "Times in UTC" in page.content.decode()
