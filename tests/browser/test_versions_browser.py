"""A job's History in a real headless Chromium: the versions with the side-by-side diff (secrets
masked), a revert from the button, and the deleted jobs page with its Restore button. Screenshots
go to test-output/screenshots/."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from jobs import services
from jobs.models import Job
from tests.browser.test_admin_browser import CHROMIUM, SHOTS, browser_page  # noqa: F401  # the fixture

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(CHROMIUM is None, reason="needs Chromium (.ci/run installs Debian's chromium)"),
]
SECRET = "browser-secret-value"


def test_the_history_shows_the_diff_and_reverts(live_server, browser_page):  # noqa: F811
    get_user_model().objects.create_superuser("staff", "", "browser-Passw0rd")
    job = services.job_create(
        data={"id": "nightly", "cron": "0 3 * * *", "url": "http://127.0.0.1:9/sync",
              "headers": {"Authorization": f"Bearer {SECRET}"}, "description": "Sync the shop"},
    )  # fmt: skip
    services.job_update(
        job=job, data={"cron": "30 4 * * 1-5", "max_retries": 3, "headers": {"Authorization": "Bearer other-secret"}}
    )
    services.job_delete(
        job=services.job_create(data={"id": "old-report", "interval_seconds": 3600, "url": "http://127.0.0.1:9/r"})
    )
    SHOTS.mkdir(parents=True, exist_ok=True)
    page = browser_page
    page.goto(f"{live_server.url}/admin/login/")
    page.fill("#id_username", "staff")
    page.fill("#id_password", "browser-Passw0rd")
    page.click("input[type=submit]")
    page.wait_for_selector("#ct-dashboard-link")

    page.goto(f"{live_server.url}/admin/jobs/job/nightly/change/")
    page.click("a.historylink:has-text('History')")
    page.wait_for_selector("#version-2 table.ct-diff")
    text = page.content()
    assert SECRET not in text
    assert "other-secret" not in text
    assert page.locator("#version-2 td.ct-before").first.inner_text() == "0 3 * * *"
    assert page.locator("#version-2 td.ct-after").first.inner_text() == "30 4 * * 1-5"
    page.screenshot(path=str(SHOTS / "job_history.png"), full_page=True)

    page.fill("#version-1 input[name=change_reason]", "back to 03:00")
    page.click("#version-1 button.ct-revert")
    page.wait_for_selector("#version-3")
    assert "Reverted to version 1: back to 03:00" in page.locator("#version-3").inner_text()
    assert Job.objects.get(pk="nightly").cron == "0 3 * * *"

    page.goto(f"{live_server.url}/admin/jobs/job/")
    page.click("#ct-deleted-jobs-link")
    page.wait_for_selector("#ct-deleted-jobs")
    page.screenshot(path=str(SHOTS / "deleted_jobs.png"), full_page=True)
    page.click("#ct-deleted-jobs button:has-text('Restore')")
    page.wait_for_selector("#content-main")
    assert Job.objects.get(pk="old-report").status == Job.Status.PAUSED
