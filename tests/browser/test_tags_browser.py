"""Tags in a real headless Chromium: typed in the job form, shown in the list's filter, filtered by."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.db import connections

from jobs import services
from jobs.models import Job
from tests.browser.test_admin_browser import CHROMIUM, CHROMIUM_ARGS, SHOTS

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(CHROMIUM is None, reason="needs Chromium (.ci/run installs Debian's chromium)"),
]


@pytest.fixture
def page(monkeypatch):
    from playwright.sync_api import sync_playwright

    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # as in test_admin_browser
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            page.set_default_timeout(15000)
            yield page
        finally:
            browser.close()
            connections.close_all()


def test_staff_tag_a_job_in_the_form_and_filter_the_list_by_tag(live_server, page):
    get_user_model().objects.create_superuser("staff", "", "browser-Passw0rd")
    services.job_create(data={"id": "untagged", "interval_seconds": 60, "url": "http://127.0.0.1:9/"})
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.goto(f"{live_server.url}/admin/login/")
    page.fill("#id_username", "staff")
    page.fill("#id_password", "browser-Passw0rd")
    page.click("input[type=submit]")
    page.wait_for_selector("#ct-dashboard-link")

    page.goto(f"{live_server.url}/admin/jobs/job/add/")
    page.fill("#id_id", "tagged-in-browser")
    page.select_option("#id_kind", "http")
    page.select_option("#id_trigger", "manual")
    page.fill("#id_url", "http://127.0.0.1:9/")
    page.fill("#id_tags", "Prod, team:billing")
    page.screenshot(path=str(SHOTS / "job_form_tags.png"), full_page=True)
    page.click("input[name=_save]")
    page.wait_for_selector("#result_list")
    assert Job.objects.get(pk="tagged-in-browser").tags == ["prod", "team:billing"]

    page.click("#changelist-filter a[href='?tag=team%3Abilling']")
    page.wait_for_url("**/admin/jobs/job/?tag=team%3Abilling")
    rows = page.locator("#result_list tbody tr")
    assert rows.count() == 1
    assert "tagged-in-browser" in rows.first.inner_text()
    page.screenshot(path=str(SHOTS / "job_list_by_tag.png"), full_page=True)
