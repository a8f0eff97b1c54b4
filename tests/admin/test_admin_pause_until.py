"""The job list's "Pause selected jobs until…" action with its date and time picker."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from core.times import format_time
from jobs import services
from jobs.models import Job

pytestmark = pytest.mark.django_db


def test_it_pauses_the_selected_jobs_until_the_time_given(staff):
    for job_id in ("a", "b"):
        services.job_create(data={"id": job_id, "cron": "0 * * * *", "url": "http://127.0.0.1:9/"})
    page = staff.get("/admin/jobs/job/").content.decode()
    assert 'name="until_0"' in page  # the date picker beside the actions
    until = timezone.localtime() + timedelta(days=2)
    response = staff.post(
        "/admin/jobs/job/",
        {
            "action": "pause_jobs_until",
            "_selected_action": ["a", "b"],
            "until_0": until.strftime("%Y-%m-%d"),
            "until_1": "09:30:00",
        },
        follow=True,
    )
    assert "2 jobs paused until" in response.content.decode()
    expected = until.replace(hour=9, minute=30, second=0, microsecond=0)
    assert set(Job.objects.values_list("status", "paused_until")) == {("paused", expected)}
    listed = staff.get("/admin/jobs/job/").content.decode()
    assert "until" in listed
    assert format_time(expected) in listed  # the admin's one format, with seconds and the zone
    assert "paused until" in staff.get("/admin/jobs/job/a/change/").content.decode().lower()


def test_it_refuses_a_time_in_the_past_or_none(staff):
    services.job_create(data={"id": "a", "cron": "0 * * * *", "url": "http://127.0.0.1:9/"})
    past = staff.post(
        "/admin/jobs/job/",
        {"action": "pause_jobs_until", "_selected_action": ["a"], "until_0": "2020-01-01", "until_1": "00:00:00"},
        follow=True,
    )
    assert "Must be in the future" in past.content.decode()
    none = staff.post("/admin/jobs/job/", {"action": "pause_jobs_until", "_selected_action": ["a"]}, follow=True)
    assert "Give the date and time" in none.content.decode()
    assert Job.objects.get(pk="a").status == "active"


def test_the_job_page_pauses_until_a_time_picked(staff):
    services.job_create(data={"id": "a", "cron": "0 * * * *", "url": "http://127.0.0.1:9/"})
    page = staff.get("/admin/jobs/job/a/change/").content.decode()
    assert "/admin/jobs/job/a/pause-until/" in page
    picker = staff.get("/admin/jobs/job/a/pause-until/").content.decode()
    assert 'name="until_0"' in picker
    assert "DateTimeShortcuts.js" in picker or "calendar.js" in picker
    until = timezone.localtime() + timedelta(days=1)
    response = staff.post(
        "/admin/jobs/job/a/pause-until/", {"until_0": until.strftime("%Y-%m-%d"), "until_1": "08:00:00"}, follow=True
    )
    assert "paused until" in response.content.decode()
    assert Job.objects.get(pk="a").paused_until == until.replace(hour=8, minute=0, second=0, microsecond=0)
    past = staff.post("/admin/jobs/job/a/pause-until/", {"until_0": "2020-01-01", "until_1": "08:00:00"})
    assert "Must be in the future" in past.content.decode()
