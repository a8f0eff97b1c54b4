"""Calendars and pause-until in a real headless Chromium: a job's next fires (moved by jitter,
skipped in a calendar's window), the "Pause until…" picker, a calendar with its windows.
Screenshots go to test-output/screenshots/."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from calendars import services as calendar_services
from jobs import services
from jobs.models import Job
from tests.browser.test_admin_browser import CHROMIUM, SHOTS, browser_page  # noqa: F401  # the fixture

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(CHROMIUM is None, reason="needs Chromium (.ci/run installs Debian's chromium)"),
]


def test_next_fires_pause_until_and_a_calendar(live_server, browser_page):  # noqa: F811
    get_user_model().objects.create_superuser("staff", "", "browser-Passw0rd")
    soon = timezone.now().replace(minute=0, second=0, microsecond=0) + timedelta(hours=2)
    # A weekly window three days off the deploy window, whatever day the test runs on (a Saturday
    # one, run on a Friday night, took the deploy window's fires and named itself instead).
    weekly = soon + timedelta(days=3)
    calendar = calendar_services.calendar_create(
        data={
            "name": "maintenance", "time_zone": "UTC",
            "windows": [
                {"name": "deploy", "start": soon.isoformat(), "end": (soon + timedelta(hours=2)).isoformat()},
                {"name": weekly.strftime("%A"), "cron": f"0 0 * * {weekly.isoweekday() % 7}",
                 "duration_seconds": 21600},
            ],
        }
    )  # fmt: skip
    services.job_create(
        data={"id": "billing", "cron": "0 * * * *", "url": "http://127.0.0.1:9/bill", "jitter_seconds": 900,
              "calendars": [calendar.pk]},
    )  # fmt: skip
    SHOTS.mkdir(parents=True, exist_ok=True)
    page = browser_page
    page.goto(f"{live_server.url}/admin/login/")
    page.fill("#id_username", "staff")
    page.fill("#id_password", "browser-Passw0rd")
    page.click("input[type=submit]")
    page.wait_for_selector("#ct-dashboard-link")

    page.goto(f"{live_server.url}/admin/jobs/job/billing/change/")
    page.wait_for_selector("table.ct-next-fires")
    fires = page.locator("table.ct-next-fires").inner_text()
    assert "calendar 'maintenance' (deploy)" in fires
    assert "jitter: +" in fires
    page.locator("table.ct-next-fires").scroll_into_view_if_needed()
    page.screenshot(path=str(SHOTS / "job_next_fires.png"), full_page=True)

    # The add form's live preview tells the same truth as the job is typed: jitter and blackouts.
    page.goto(f"{live_server.url}/admin/jobs/job/add/")
    page.fill("#id_id", "draft")
    page.select_option("#id_trigger", "cron")
    page.fill("#id_jitter_seconds", "900")
    page.check(f'input[name="calendars"][value="{calendar.pk}"]')
    page.fill("#id_cron", "0 * * * *")
    page.wait_for_function("document.getElementById('cron-preview').textContent.includes('jitter: +')")
    page.wait_for_function("document.getElementById('cron-preview').textContent.includes('skipped: ')")
    assert "calendar 'maintenance' (deploy)" in page.locator("#cron-preview").inner_text()
    page.locator("#cron-preview").scroll_into_view_if_needed()
    page.screenshot(path=str(SHOTS / "job_form_live_preview.png"), full_page=False)

    page.goto(f"{live_server.url}/admin/jobs/job/billing/change/")
    page.click("a:has-text('Pause until…')")
    page.wait_for_selector("#ct-pause-until .datetimeshortcuts")  # the admin's calendar and clock
    tomorrow = timezone.localtime() + timedelta(days=1)
    page.fill("#id_until_0", tomorrow.strftime("%Y-%m-%d"))
    page.fill("#id_until_1", "09:00:00")
    page.screenshot(path=str(SHOTS / "job_pause_until.png"), full_page=True)
    page.click("#ct-pause-until input[type=submit]")
    page.wait_for_selector("ul.messagelist")
    assert Job.objects.get(pk="billing").paused_until is not None
    page.goto(f"{live_server.url}/admin/jobs/job/")
    assert "until" in page.locator("#result_list").inner_text()
    page.screenshot(path=str(SHOTS / "job_list_paused_until.png"), full_page=True)

    page.goto(f"{live_server.url}/admin/calendars/calendar/{calendar.pk}/change/")
    page.wait_for_selector("#windows-group")
    assert "billing" in page.content()
    page.screenshot(path=str(SHOTS / "calendar_change.png"), full_page=True)
