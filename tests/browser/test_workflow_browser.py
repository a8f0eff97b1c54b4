"""A job's workflow on its admin page in a real headless Chromium: what it waits for and fires, and
the inline SVG graph of its chain. Screenshots go to test-output/screenshots/."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from jobs import services
from tests.browser.test_admin_browser import CHROMIUM, SHOTS, browser_page  # noqa: F401  # the fixture

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(CHROMIUM is None, reason="needs Chromium (.ci/run installs Debian's chromium)"),
]


def test_the_job_page_draws_its_chain(live_server, browser_page):  # noqa: F811
    get_user_model().objects.create_superuser("staff", "", "browser-Passw0rd")
    url = "http://127.0.0.1:9/"
    services.job_create(data={"id": "load-data", "interval_seconds": 300, "url": url})
    services.job_create(data={"id": "build-report", "url": url, "after": [{"job": "load-data", "on": "success"}]})
    services.job_create(data={"id": "send-report", "url": url, "after": [{"job": "build-report", "on": "finish"}]})
    services.job_create(data={"id": "page-someone", "url": url, "after": [{"job": "load-data", "on": "failure"}]})
    SHOTS.mkdir(parents=True, exist_ok=True)
    page = browser_page
    page.goto(f"{live_server.url}/admin/login/")
    page.fill("#id_username", "staff")
    page.fill("#id_password", "browser-Passw0rd")
    page.click("input[type=submit]")
    page.wait_for_selector("#ct-dashboard-link")
    page.goto(f"{live_server.url}/admin/jobs/job/build-report/change/")
    graph = page.locator("svg.ct-workflow")
    graph.wait_for()
    assert graph.locator("rect").count() == 4
    assert graph.locator("line").count() == 3
    box = graph.bounding_box()
    assert box is not None
    assert box["width"] > 300
    page.locator(".ct-workflow-summary").scroll_into_view_if_needed()
    page.screenshot(path=str(SHOTS / "job_workflow.png"), full_page=True)
    graph.screenshot(path=str(SHOTS / "job_workflow_graph.png"))
