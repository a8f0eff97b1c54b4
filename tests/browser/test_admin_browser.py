"""The admin in a real headless Chromium (Playwright driving the system's Chromium).

Logs in, creates a cron job with the form (watching the preview), runs it now, sees the run,
pauses it; screenshots of the job form, the job list and the dashboard go to test-output/.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.db import connections

from jobs.models import Job
from runs.models import Run

CHROMIUM = os.environ.get("CHROMIUM_PATH") or shutil.which("chromium") or shutil.which("chromium-browser")
SHOTS = Path(__file__).resolve().parents[2] / "test-output" / "screenshots"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(CHROMIUM is None, reason="needs Chromium (.ci/run installs Debian's chromium)"),
]


@pytest.fixture
def browser_page(monkeypatch):
    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs an event loop in this thread; the test's own ORM calls are sync.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(15000)
            yield page
        finally:
            browser.close()
            # Playwright's sync API runs the test in a greenlet of its own, with its own context and so
            # its own database connection: left open, the test database could not be dropped at the
            # end of the session (PostgreSQL waits 5 s for it, then refuses).
            connections.close_all()


def test_staff_create_preview_run_and_pause_a_job_in_the_admin(live_server, browser_page, http_target, settings):
    settings.CELERY_TASK_ALWAYS_EAGER = True  # run-now executes in the web process: no worker here
    from crontask.celery import app

    app.conf.task_always_eager = True
    get_user_model().objects.create_superuser("staff", "", "browser-Passw0rd")
    SHOTS.mkdir(parents=True, exist_ok=True)
    page = browser_page

    page.goto(f"{live_server.url}/admin/login/")
    page.fill("#id_username", "staff")
    page.fill("#id_password", "browser-Passw0rd")
    page.click("input[type=submit]")
    page.wait_for_selector("#ct-dashboard-link")

    page.goto(f"{live_server.url}/admin/jobs/job/add/")
    page.fill("#id_id", "browser-job")
    page.select_option("#id_kind", "http")
    page.select_option("#id_trigger", "cron")
    assert page.is_hidden("fieldset.ct-kind-python")
    assert page.is_visible("fieldset.ct-kind-http")
    page.fill("#id_cron", "*/5 * * * *")
    page.wait_for_function("document.getElementById('cron-preview').textContent.includes('Every 5 minutes')")
    assert page.locator("#cron-preview div").count() == 6  # the description and five fire times
    page.fill("#id_url", f"{http_target.url}/from-browser")
    page.screenshot(path=str(SHOTS / "job_form.png"), full_page=True)
    page.click("input[name=_save]")
    page.wait_for_selector("#result_list")
    assert "Every 5 minutes" in page.inner_text("#result_list")
    job = Job.objects.get(pk="browser-job")
    assert (job.trigger, job.cron, job.periodic_task is not None) == ("cron", "*/5 * * * *", True)

    page.goto(f"{live_server.url}/admin/jobs/job/browser-job/change/")
    page.click("#ct-run-now")
    page.wait_for_selector(".messagelist")
    page.wait_for_selector("table.ct-recent-runs a")
    run = Run.objects.get(job_id="browser-job")
    assert (run.trigger, run.status, run.status_code) == ("manual", "success", 200)
    assert http_target.hits["/from-browser"] == 1
    assert "success" in page.inner_text("table.ct-recent-runs")

    page.click("#ct-pause")
    page.wait_for_selector("#ct-resume")
    assert Job.objects.get(pk="browser-job").status == "paused"

    page.goto(f"{live_server.url}/admin/jobs/job/")
    assert "paused" in page.inner_text("#result_list")
    page.screenshot(path=str(SHOTS / "job_list.png"), full_page=True)
    page.goto(f"{live_server.url}/admin/dashboard/")
    page.wait_for_selector("#runs-per-hour svg")
    page.screenshot(path=str(SHOTS / "dashboard.png"), full_page=True)
    for name in ("job_form.png", "job_list.png", "dashboard.png"):
        assert (SHOTS / name).stat().st_size > 10_000


def test_staff_make_an_alert_rule_and_see_the_jobs_incident(live_server, browser_page, http_target, settings):
    """A rule made with the admin's form; the failing job's form shows it and the incident it opened."""
    from alerts.models import AlertRule, Incident
    from alerts.services import channel_create
    from crontask.celery import app
    from jobs import services as job_services
    from tests.alerts.receiver import Receiver

    settings.CELERY_TASK_ALWAYS_EAGER = True  # run-now and the notification run in the web process
    app.conf.task_always_eager = True
    get_user_model().objects.create_superuser("staff", "", "browser-Passw0rd")
    SHOTS.mkdir(parents=True, exist_ok=True)
    job_services.job_create(data={"id": "nightly", "name": "Nightly export", "url": f"{http_target.url}/status/500"})
    page = browser_page
    with Receiver() as receiver:
        channel = channel_create(data={"name": "ops chat", "kind": "slack", "target": receiver.url + "/slack"})
        page.goto(f"{live_server.url}/admin/login/")
        page.fill("#id_username", "staff")
        page.fill("#id_password", "browser-Passw0rd")
        page.click("input[type=submit]")
        page.wait_for_selector("#ct-dashboard-link")

        page.goto(f"{live_server.url}/admin/alerts/alertrule/add/")
        page.fill("#id_name", "Failures to ops")
        page.select_option("#id_event", "failed")
        page.check(f"input[name=channels][value='{channel.pk}']")
        page.screenshot(path=str(SHOTS / "alert_rule_form.png"), full_page=True)
        page.click("input[name=_save]")
        page.wait_for_selector("#result_list")
        rule = AlertRule.objects.get()
        assert (rule.event, list(rule.channels.all()), rule.jobs.count()) == ("failed", [channel], 0)

        page.goto(f"{live_server.url}/admin/jobs/job/nightly/change/")
        page.click("#ct-run-now")
        page.wait_for_selector(".messagelist")
        incident = Incident.objects.get()
        assert (incident.rule_id, incident.job_id, incident.closed_at) == (rule.pk, "nightly", None)
        assert receiver.hits["/slack"] == 1
        page.goto(f"{live_server.url}/admin/jobs/job/nightly/change/")
        alerts = page.locator("fieldset", has_text="Alerts").last.inner_text()
        assert "Failures to ops" in alerts
        assert "failed" in alerts
        page.screenshot(path=str(SHOTS / "job_form_alerts.png"), full_page=True)
        page.goto(f"{live_server.url}/admin/alerts/incident/")
        assert "Nightly export" in page.inner_text("#result_list")
        page.screenshot(path=str(SHOTS / "incidents.png"), full_page=True)


def test_staff_watch_a_running_jobs_log_grow_on_its_page(live_server, browser_page, settings):
    """The run's page, opened while a python handler logs a line every 0.3 s, shows the lines as
    they come without a reload, and stops asking for more once the run has ended."""
    import threading
    import time

    from jobs import services as job_services
    from runs.enqueue import create_manual
    from runs.execution import run_execute

    settings.CRONTASK_SCRIPTS_DIR = Path(__file__).resolve().parents[1] / "scripts"
    get_user_model().objects.create_superuser("staff", "", "browser-Passw0rd")
    SHOTS.mkdir(parents=True, exist_ok=True)
    job = job_services.job_create(
        data={
            "id": "chatty",
            "kind": "python",
            "handler": "scripts:chatty",
            "handler_kwargs": {"lines": 20, "pause": 0.3},
            # Well past the handler's 6 s: on a loaded machine its child process can take seconds to
            # start (a run that timed out at the default 10 s failed this test).
            "timeout_seconds": 60,
        }
    )
    page = browser_page
    log_requests: list[float] = []

    def seen(request) -> None:
        if "/log/" in request.url:
            log_requests.append(time.monotonic())

    page.on("request", seen)
    page.goto(f"{live_server.url}/admin/login/")
    page.fill("#id_username", "staff")
    page.fill("#id_password", "browser-Passw0rd")
    page.click("input[type=submit]")
    page.wait_for_selector("#ct-dashboard-link")

    run = create_manual(job, {}, sent=True)

    def work() -> None:
        try:
            run_execute(job_id=job.pk, run_id=run.pk, worker="browser test")
        finally:
            connections.close_all()  # this thread's own

    worker = threading.Thread(target=work)
    worker.start()
    try:
        page.goto(f"{live_server.url}/admin/runs/run/{run.pk}/change/")
        page.evaluate("window.ctNotReloaded = true")
        block = page.locator("pre[data-ct-live=log_output]")
        counts = []
        deadline = time.monotonic() + 60  # the run's timeout: the loop ends with the run
        while worker.is_alive() and time.monotonic() < deadline:
            counts.append(block.inner_text().count(" of 20"))
            time.sleep(0.2)
        running_shot = SHOTS / "run_live_log.png"
        page.screenshot(path=str(running_shot), full_page=True)
    finally:
        worker.join()
    assert Run.objects.get(pk=run.pk).status == "success"
    grew = sorted(set(counts) - {0})
    assert len(grew) >= 3, counts  # the log grew at least twice on the page while the run went on
    assert counts == sorted(counts)
    # The end reaches the page within 2 s of the outcome being stored, the polling then stops.
    page.wait_for_function(
        "document.querySelector('.ct-live-note').textContent.includes('The run ended')", timeout=2500
    )
    log = page.inner_text(".field-log_output_block pre")
    assert "line 20 of 20" in log
    assert log.count("line 1 of 20") == 1  # appended, never repeated
    assert page.inner_text(".field-status_badge .ct-badge") == "success"
    assert page.evaluate("window.ctNotReloaded") is True
    asked = len(log_requests)
    time.sleep(3)
    assert len(log_requests) == asked
    page.screenshot(path=str(SHOTS / "run_live_log_ended.png"), full_page=True)
    assert running_shot.stat().st_size > 10_000
