"""The admin in Simplified Chinese at 1280 px, in a real headless Chromium that asks for zh-CN: the
dashboard, the job list, a job page with its charts, a run page, the add form and the delete
confirmation. Each page fits the window, speaks Chinese (no English left in what our templates and
code say), shows its times with seconds and a zone label, and a job failing every run shows a red
"失败中" badge. The language switch in the top bar goes to English and back. Screenshots go to
test-output/screenshots/zh_*.png.
"""

from __future__ import annotations

import re

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from heartbeats.services import BEAT, record_heartbeat
from jobs import services
from jobs.models import Job
from runs.models import Run
from tests.browser.test_admin_browser import CHROMIUM, CHROMIUM_ARGS, SHOTS
from tests.browser.test_admin_ux_browser import TIME, URL, WIDTH, _fits, _runs

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(CHROMIUM is None, reason="needs Chromium (.ci/run installs Debian's chromium)"),
]

# English our pages would show if a string were left unmarked or untranslated (Django's own admin
# words are translated by Django's catalogue; these are ours).
ENGLISH = re.compile(
    r"\b(Deleted jobs|Run now|Pause until|Schedule|Policies|Timing|Delivery|Runs per hour|Next fires|"
    r"healthy|failing|never run|last 20 runs|No runs yet|Times in|Dashboard|Refreshes every|"
    r"Failure rate|Slowest jobs|Running now|Are you sure|runs in all)\b"
)


@pytest.fixture
def page_zh(monkeypatch):
    from django.db import connections
    from playwright.sync_api import sync_playwright

    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            # Chromium's Accept-Language follows the context's locale: "zh-CN" → zh-hans.
            context = browser.new_context(viewport={"width": WIDTH, "height": 900}, locale="zh-CN")
            page = context.new_page()
            page.set_default_timeout(15000)
            yield page
        finally:
            browser.close()
            connections.close_all()


def _chinese(page) -> str:
    text = page.inner_text("#content")
    assert "任务" in text or "运行" in text, f"{page.url}: no Chinese"
    left = sorted(set(ENGLISH.findall(text)))
    assert left == [], f"{page.url}: English left: {left}"
    if page.locator(".breadcrumbs").count():
        assert "任务 \u203a 任务" not in page.inner_text(".breadcrumbs")
    return text


def _shot(page, name: str) -> None:
    _fits(page)
    page.screenshot(path=str(SHOTS / f"zh_{name}.png"), full_page=True)
    # A long page also in window-high parts, to be read at full size.
    height = page.evaluate("document.scrollingElement.scrollHeight")
    for part, top in enumerate(range(0, height, 1000) if height > 1400 else []):
        clip = {"x": 0, "y": top, "width": WIDTH, "height": min(1000, height - top)}
        page.screenshot(path=str(SHOTS / f"zh_{name}_part{part + 1}.png"), full_page=True, clip=clip)


def test_the_admin_in_chinese_at_1280_px(live_server, page_zh):
    now = timezone.now()
    record_heartbeat(BEAT)
    get_user_model().objects.create_superuser("staff", "", "browser-Passw0rd")
    SHOTS.mkdir(parents=True, exist_ok=True)
    flaky = services.job_create(
        data={"id": "nightly-export", "name": "夜间导出到数据仓库", "interval_seconds": 600, "url": URL}
    )
    _runs(flaky, ["failed"] * 24, now=now, durations=[120 + (i * 37) % 90 for i in range(24)])
    steady = services.job_create(
        data={"id": "sync-orders", "cron": "*/10 * * * *", "timezone": "Asia/Shanghai", "url": URL, "method": "POST"}
    )
    _runs(steady, ["success"] * 46 + ["timeout", "success", "success", "success"], now=now,
          durations=[200 + (i * 53) % 400 for i in range(50)])  # fmt: skip
    services.job_create(data={"id": "fresh", "interval_seconds": 3600, "url": URL})
    services.job_create(data={"id": "resting", "interval_seconds": 60, "url": URL, "status": "paused"})
    long_id = "warehouse.nightly-export:" + "x" * 70
    services.job_create(data={"id": long_id, "cron": "0 9 * * mon-fri", "timezone": "America/Los_Angeles", "url": URL})
    page = page_zh

    page.goto(f"{live_server.url}/admin/login/")
    page.fill("#id_username", "staff")
    page.fill("#id_password", "browser-Passw0rd")
    page.click("input[type=submit]")
    page.wait_for_selector("#ct-health-summary")
    assert page.evaluate("document.documentElement.lang") == "zh-hans"
    assert page.input_value("#ct-language-select") == "zh-hans"
    _chinese(page)
    _shot(page, "index")

    # The display zone, chosen on the (Chinese) preferences page.
    page.click("#ct-zone-link")
    page.select_option("#id_timezone", "Asia/Shanghai")
    page.click("#ct-preferences input[type=submit]")
    page.wait_for_selector("#ct-zone-link")
    assert "时间按 Asia/Shanghai" in (page.text_content("#ct-zone-link") or "")

    page.goto(f"{live_server.url}/admin/dashboard/")
    page.wait_for_selector("#runs-per-hour svg")
    text = _chinese(page)
    assert "每小时运行数" in text
    assert TIME.search(page.inner_text("#upcoming"))
    _shot(page, "dashboard")

    page.goto(f"{live_server.url}/admin/jobs/job/")
    row = page.locator("#result_list tr", has_text="nightly-export")
    badge = row.locator(".ct-badge").first
    assert badge.inner_text() == "失败中"
    assert badge.evaluate("e => getComputedStyle(e).backgroundColor") == "rgb(198, 40, 40)"
    assert "健康" in page.locator("#result_list tr", has_text="sync-orders").inner_text()
    assert "从未运行" in page.locator("#result_list tr", has_text="fresh").inner_text()
    assert "已暂停" in page.locator("#result_list tr", has_text="resting").inner_text()
    assert TIME.search(page.inner_text("#result_list"))
    page.wait_for_timeout(1200)  # times.js has refreshed the relative times, in the page's words
    relatives = page.locator("span.ct-rel").all_inner_texts()
    assert relatives
    assert all(re.fullmatch(r"\((\d+ (秒|分钟|小时|天)(后|前)|现在)\)", text) for text in relatives), relatives
    _chinese(page)
    _shot(page, "job_list")

    page.goto(f"{live_server.url}/admin/jobs/job/sync-orders/change/")
    assert page.locator("#ct-run-strip rect").count() == 50
    assert page.locator("#ct-duration-chart #ct-p95").count() == 1
    state = page.inner_text("fieldset:has(.field-next_fire)")
    assert "按任务的时区" in state
    assert TIME.search(state)
    headings = page.locator("fieldset h2").all_inner_texts()
    assert "调度" in headings
    assert "策略" in headings
    assert "状态" in headings
    _chinese(page)
    _shot(page, "job_page")

    run = Run.objects.filter(job=flaky).latest("id")
    page.goto(f"{live_server.url}/admin/runs/run/{run.pk}/change/")
    assert "时间" in page.locator("fieldset h2").all_inner_texts()
    assert page.inner_text("#ct-run-again") == "再次运行"
    assert TIME.search(page.inner_text("fieldset:has(.field-started_at_shown)"))
    _chinese(page)
    _shot(page, "run_page")

    page.goto(f"{live_server.url}/admin/runs/run/")
    assert TIME.search(page.inner_text("#result_list"))
    _chinese(page)
    _shot(page, "run_list")

    page.goto(f"{live_server.url}/admin/jobs/job/add/")
    page.select_option("#id_kind", "python")
    page.select_option("#id_trigger", "date")
    assert "从列表中选择或直接输入" in page.inner_text("#id_handler_helptext")
    _chinese(page)
    _shot(page, "add_form")
    # The add form's cron preview speaks Chinese too (the djangojs catalogue at /jsi18n/).
    page.select_option("#id_trigger", "cron")
    page.fill("#id_cron", "*/5 * * * *")
    page.wait_for_function("document.querySelector('#id_cron').nextElementSibling.innerText.includes('接下来')")
    page.screenshot(path=str(SHOTS / "zh_add_form_cron.png"), full_page=True)

    page.goto(f"{live_server.url}/admin/jobs/job/")
    for job_id in ("nightly-export", "fresh"):
        page.check(f"input[name=_selected_action][value='{job_id}']")
    page.select_option("select[name=action]", "delete_jobs")
    page.click("button[name=index]")
    page.wait_for_selector("#ct-delete-confirmation")
    assert "共删除 24 次运行" in page.inner_text("#content")
    assert Job.objects.filter(pk__in=["nightly-export", "fresh"]).count() == 2
    _chinese(page)
    _shot(page, "delete_confirmation")

    # The switch in the top bar: English, kept over the browser's zh-CN, then back.
    page.goto(f"{live_server.url}/admin/jobs/job/")
    with page.expect_navigation():
        page.select_option("#ct-language-select", "en")
    assert page.text_content("#ct-deleted-jobs-link") == "Deleted jobs"
    assert page.input_value("#ct-language-select") == "en"
    page.goto(f"{live_server.url}/admin/dashboard/")
    assert "Runs per hour" in page.inner_text("#content")
    with page.expect_navigation():
        page.select_option("#ct-language-select", "zh-hans")
    assert "每小时运行数" in page.inner_text("#content")
