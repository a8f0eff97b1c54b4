"""The admin at 1280 px in a real headless Chromium: the dashboard, the job list, a job page with its
charts, a run page, the add form and the delete confirmation. Each page fits the window (no
horizontal scroll), shows its times with seconds and a zone label, and a job failing every run
shows a red "failing" badge. Screenshots go to test-output/screenshots/ux_*.png.
"""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from heartbeats.services import BEAT, record_heartbeat
from jobs import services
from jobs.models import Job
from runs.models import Run
from tests.browser.test_admin_browser import CHROMIUM, CHROMIUM_ARGS, SHOTS

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(CHROMIUM is None, reason="needs Chromium (.ci/run installs Debian's chromium)"),
]

WIDTH = 1280
TIME = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d (UTC|CST)")
URL = "http://127.0.0.1:9/x"


@pytest.fixture
def page_1280(monkeypatch):
    from django.db import connections
    from playwright.sync_api import sync_playwright

    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": WIDTH, "height": 900})
            page.set_default_timeout(15000)
            yield page
        finally:
            browser.close()
            connections.close_all()


def _runs(job: Job, statuses: list[str], *, now, durations: list[int]) -> None:
    Run.objects.bulk_create(
        Run(
            job=job,
            trigger="scheduled",
            status=status,
            scheduled_for=now - timedelta(minutes=10 * (len(statuses) - i)),
            queued_at=now - timedelta(minutes=10 * (len(statuses) - i)),
            started_at=now - timedelta(minutes=10 * (len(statuses) - i)),
            finished_at=now - timedelta(minutes=10 * (len(statuses) - i)) + timedelta(milliseconds=durations[i]),
            duration_ms=durations[i],
            status_code=500 if status == "failed" else 200,
            error="HTTP 500" if status == "failed" else "",
        )
        for i, status in enumerate(statuses)
    )
    last = statuses[-1]
    Job.objects.filter(pk=job.pk).update(
        run_count=len(statuses),
        success_count=statuses.count("success"),
        failure_count=statuses.count("failed"),
        last_run_status=last,
        last_run_at=now - timedelta(minutes=10),
    )


def _fits(page) -> None:
    width, inner = page.evaluate("[document.scrollingElement.scrollWidth, window.innerWidth]")
    assert width <= inner, f"{page.url} scrolls sideways: {width} > {inner}"
    # The admin's result list scrolls inside its own box: its columns must fit it too.
    for box in page.locator("#changelist .results").all():
        scroll, client = box.evaluate("e => [e.scrollWidth, e.clientWidth]")
        widths = box.evaluate(
            "e => Array.from(e.querySelectorAll('tr:first-child > *')).map(c => c.className + ': ' + c.offsetWidth)"
        )
        assert scroll <= client, f"{page.url}: the list's columns are cut off: {scroll} > {client} ({widths})"
    if page.locator(".breadcrumbs").count():
        assert "Jobs \u203a Jobs" not in page.inner_text(".breadcrumbs")


def _shot(page, name: str) -> None:
    _fits(page)
    page.screenshot(path=str(SHOTS / f"ux_{name}.png"), full_page=True)


def test_the_admin_at_1280_px(live_server, page_1280):
    now = timezone.now()
    record_heartbeat(BEAT)  # beat is seen: jobs are not "late" for want of it
    get_user_model().objects.create_superuser("staff", "", "browser-Passw0rd")
    SHOTS.mkdir(parents=True, exist_ok=True)
    flaky = services.job_create(
        data={"id": "nightly-export", "name": "Nightly export to the warehouse", "interval_seconds": 600, "url": URL}
    )
    _runs(flaky, ["failed"] * 24, now=now, durations=[120 + (i * 37) % 90 for i in range(24)])
    steady = services.job_create(
        data={"id": "sync-orders", "cron": "*/10 * * * *", "timezone": "Asia/Shanghai", "url": URL, "method": "POST"}
    )
    _runs(steady, ["success"] * 46 + ["timeout", "success", "success", "success"], now=now,
          durations=[200 + (i * 53) % 400 for i in range(50)])  # fmt: skip
    services.job_create(data={"id": "fresh", "interval_seconds": 3600, "url": URL})
    services.job_create(data={"id": "resting", "interval_seconds": 60, "url": URL, "status": "paused"})
    long_id = "warehouse.nightly-export:" + "x" * 70  # an id of 95 characters, no space to wrap at
    services.job_create(data={"id": long_id, "cron": "0 9 * * mon-fri", "timezone": "America/Los_Angeles", "url": URL})
    page = page_1280

    page.goto(f"{live_server.url}/admin/login/")
    page.fill("#id_username", "staff")
    page.fill("#id_password", "browser-Passw0rd")
    page.click("input[type=submit]")
    page.wait_for_selector("#ct-health-summary")
    # The index opens with the counts per state and the failing jobs.
    assert "nightly" in page.inner_text("#ct-failing-jobs").lower()
    _shot(page, "index")

    # The display zone: Asia/Shanghai, chosen on the preferences page.
    page.click("#ct-zone-link")
    page.select_option("#id_timezone", "Asia/Shanghai")
    page.click("#ct-preferences input[type=submit]")
    page.wait_for_selector("#ct-zone-link")
    assert "Asia/Shanghai" in (page.text_content("#ct-zone-link") or "")

    page.goto(f"{live_server.url}/admin/dashboard/")
    page.wait_for_selector("#runs-per-hour svg")
    assert TIME.search(page.inner_text("#upcoming"))
    assert "Asia/Shanghai" in (page.text_content("#ct-chart-zone") or "")
    assert page.locator("meta[http-equiv=refresh]").count() == 1
    _shot(page, "dashboard")

    page.goto(f"{live_server.url}/admin/jobs/job/")
    row = page.locator("#result_list tr", has_text="nightly-export")
    badge = row.locator(".ct-badge").first
    assert badge.inner_text() == "failing"
    assert badge.evaluate("e => getComputedStyle(e).backgroundColor") == "rgb(198, 40, 40)"  # red, not green
    assert "healthy" in page.locator("#result_list tr", has_text="sync-orders").inner_text()
    assert "never run" in page.locator("#result_list tr", has_text="fresh").inner_text()
    assert "paused" in page.locator("#result_list tr", has_text="resting").inner_text()
    assert TIME.search(page.inner_text("#result_list"))
    # Relative times beside, kept fresh by times.js in the server's words.
    page.wait_for_timeout(1200)
    relatives = page.locator("span.ct-rel").all_inner_texts()
    assert relatives
    assert all(re.fullmatch(r"\((in \d+ (s|min|h|d)|\d+ (s|min|h|d) ago|now)\)", text) for text in relatives), relatives
    _shot(page, "job_list")
    page.goto(f"{live_server.url}/admin/jobs/job/?health=failing")
    assert page.locator("#result_list tbody tr").count() == 1

    page.goto(f"{live_server.url}/admin/jobs/job/sync-orders/change/")
    assert page.locator("#ct-run-strip rect").count() == 50
    assert page.locator("#ct-duration-chart #ct-p50").count() == 1
    assert page.locator("#ct-duration-chart #ct-p95").count() == 1
    state = page.inner_text("fieldset:has(.field-next_fire)")
    assert "In the job's zone:" in state
    assert "Asia/Shanghai" in state
    assert TIME.search(state)
    _shot(page, "job_page")
    page.locator("fieldset:has(#ct-run-strip)").screenshot(path=str(SHOTS / "ux_job_pictures.png"))
    page.locator("fieldset:has(.field-next_fire)").screenshot(path=str(SHOTS / "ux_job_state.png"))

    run = Run.objects.filter(job=flaky).latest("id")
    page.goto(f"{live_server.url}/admin/runs/run/{run.pk}/change/")
    headings = page.locator("fieldset h2").all_inner_texts()
    assert "HTTP" in headings
    assert "Python" not in headings
    assert "Shell" not in headings
    assert page.locator("#ct-run-again").count() == 1
    assert TIME.search(page.inner_text("fieldset:has(.field-started_at_shown)"))
    _shot(page, "run_page")

    page.goto(f"{live_server.url}/admin/runs/run/")
    assert TIME.search(page.inner_text("#result_list"))
    _shot(page, "run_list")

    page.goto(f"{live_server.url}/admin/jobs/job/add/")
    page.select_option("#id_kind", "python")
    page.select_option("#id_trigger", "date")
    assert page.locator("datalist#ct-handlers option").count() >= 1
    assert "<name>" in page.inner_text("#id_handler_helptext")
    assert page.locator("#id_method option").all_inner_texts()[:2] == ["GET", "POST"]
    _shot(page, "add_form")

    page.goto(f"{live_server.url}/admin/jobs/job/")
    for job_id in ("nightly-export", "fresh"):
        page.check(f"input[name=_selected_action][value='{job_id}']")
    page.select_option("select[name=action]", "delete_jobs")
    page.click("button[name=index]")
    page.wait_for_selector("#ct-delete-confirmation")
    listed = page.inner_text("#ct-delete-list")
    assert "nightly-export" in listed
    assert "24 runs" in listed
    assert "0 runs" in listed
    assert Job.objects.filter(pk__in=["nightly-export", "fresh"]).count() == 2  # nothing deleted yet
    _shot(page, "delete_confirmation")
    page.click("#ct-confirm-delete")
    page.wait_for_selector(".messagelist")
    assert "2 jobs deleted." in page.inner_text(".messagelist")
    assert not Job.objects.filter(pk__in=["nightly-export", "fresh"]).exists()
