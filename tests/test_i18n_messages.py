# ruff: noqa: RUF001 - the Chinese texts use full-width punctuation, as Chinese does
"""The texts a person reads that are written outside a request: the errors a worker or beat stores
on a run, the notifications, the calendar previews, the API's own 400s, the audit's labels and the
commands' help. A process that activates no language (a worker, beat, a command) writes them in
LANGUAGE_CODE; a request, in the language it asks for."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.utils import timezone, translation

from alerts.messages import build_message
from audit.models import AuditEntry
from jobs import services as job_services
from runs import policies, reaper
from runs.executors.shell import execute_shell
from runs.management.commands.run_job import Command as RunJobCommand
from runs.models import Run

URL = "http://127.0.0.1:9/"


@pytest.fixture
def chinese_process(settings):
    """A process set to Chinese (LANGUAGE_CODE=zh-hans) that activates no language, as a worker,
    beat or a command run from the shell does."""
    settings.LANGUAGE_CODE = "zh-hans"
    previous = translation.get_language()
    translation.deactivate()  # not deactivate_all(): that is no translation at all
    yield
    translation.activate(previous) if previous else translation.deactivate()


@pytest.mark.django_db
def test_the_reaper_writes_a_lost_run_s_error_in_language_code(chinese_process):
    job = job_services.job_create(data={"id": "lost", "interval_seconds": 60, "url": URL, "timeout_seconds": 5})
    run = Run.objects.create(job=job, trigger="manual", status="running", started_at=timezone.now() - timedelta(days=1))
    assert reaper.reap_lost_runs() == 1
    run.refresh_from_db()
    assert run.status == "lost"
    assert run.error == "运行它的工作进程在其完成前停止了（被终止或崩溃）。"


def test_a_shell_command_s_exit_code_is_told_in_language_code(chinese_process):
    outcome = execute_shell(command="sh -c 'exit 3'", timeout=30, max_bytes=1000)
    assert (outcome.status, outcome.error) == ("failed", "退出码 3。")


def test_a_shell_command_s_exit_code_is_told_in_english_by_default():
    with translation.override("en"):
        outcome = execute_shell(command="sh -c 'exit 3'", timeout=30, max_bytes=1000)
    assert outcome.error == "Exit code 3."


def test_a_misfire_is_recognised_whatever_language_wrote_it():
    """The alert on late fires reads a skipped run's error: one written in Chinese (a worker with
    LANGUAGE_CODE=zh-hans) is still a misfire to a process speaking English, and the other way."""
    now = datetime(2026, 1, 1, tzinfo=UTC)
    with translation.override("zh-hans"):
        chinese = policies.misfire_reason(now - timedelta(seconds=95), now=now, grace_seconds=30)
    with translation.override("en"):
        english = policies.misfire_reason(now - timedelta(seconds=95), now=now, grace_seconds=30)
    assert chinese == "错过触发: 比计划时间晚 95.0 秒开始；容忍时间为 30 秒。"
    assert english == "Misfire: started 95.0 s after its scheduled time; the grace is 30 s."
    for language in ("en", "zh-hans"):
        with translation.override(language):
            assert policies.skipped_by_misfire("skipped", chinese)
            assert policies.skipped_by_misfire("skipped", english)
            assert not policies.skipped_by_misfire("skipped", "The job was paused before this fire started.")


@pytest.mark.django_db
def test_a_notification_is_worded_in_language_code(chinese_process, settings):
    settings.CRONTASK_BASE_URL = "https://crontask.example.com/"
    job = job_services.job_create(data={"id": "nightly", "name": "Nightly", "interval_seconds": 60, "url": URL})
    run = Run.objects.create(
        job=job,
        trigger="manual",
        status="failed",
        attempt=2,
        duration_ms=12,
        error="HTTP 500",
        started_at=timezone.now(),
    )
    text = build_message("failed", job=job, run=run, detail="x")
    assert f"运行 {run.pk}：失败（第 2 次尝试）" in text.replace(" （", "（")
    assert "耗时：12 毫秒" in text
    assert "错误：HTTP 500" in text
    assert "：任务 Nightly（nightly）" in text
    assert "Run " not in text
    assert "Error:" not in text


@pytest.mark.django_db
def test_the_calendar_preview_names_a_dst_skip_in_the_language_asked_for(api):
    """The skip a ``skip_*`` DST policy makes is found by what daylight saving does to the fire,
    not by the English words of its reason: it is listed in Chinese too."""
    with time_machine.travel(datetime(2026, 3, 7, 12, tzinfo=UTC), tick=False):
        job_services.job_create(
            data={
                "id": "d",
                "cron": "30 2 * * *",
                "timezone": "America/New_York",
                "url": URL,
                "dst_policy": "skip_once",
            }
        )
    query = {"count": 3, "after": "2026-03-07T12:00:00Z"}
    listed = api.get("/api/jobs/d/preview/", query, HTTP_ACCEPT_LANGUAGE="zh-hans").json()["fires"]
    assert [f["skipped"] for f in listed] == [True, False, False]
    assert listed[0]["reasons"] == ["夏令时：当天不存在所指定的时间；按任务的夏令时策略跳过"]
    english = api.get("/api/jobs/d/preview/", query, HTTP_ACCEPT_LANGUAGE="en").json()["fires"]
    assert english[0]["reasons"] == ["DST: the time named does not exist that day; skipped by the job's DST policy"]


@pytest.mark.django_db
def test_the_api_s_own_400s_speak_the_language_asked_for(api):
    nul = api.get("/api/jobs/", {"search": "a\x00b"}, HTTP_ACCEPT_LANGUAGE="zh-hans")
    assert nul.status_code == 400
    assert nul.json() == {"detail": "查询字符串包含 NUL 字符，任何值都不能包含它。"}
    cursor = api.get("/api/runs/", {"cursor": "not-a-cursor"}, HTTP_ACCEPT_LANGUAGE="zh-hans")
    assert cursor.status_code == 400
    assert cursor.json() == {"cursor": ["不是此列表给出的游标：请使用其下一页或上一页链接。"]}


@pytest.mark.django_db
def test_the_audit_list_shows_its_actions_in_chinese(client, admin_user):
    AuditEntry.objects.create(actor="ops", action="pause", source="api", job_id="nightly")
    client.force_login(admin_user)
    page = client.get("/admin/audit/auditentry/", HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
    assert '<td class="field-action">暂停</td>' in page


def test_a_command_s_help_is_in_language_code(chinese_process):
    text = RunJobCommand().create_parser("manage.py", "run_job").format_help()
    assert "立即在本进程中运行一个任务并输出该运行" in text
    assert "要运行的任务的 ID。" in text
    with translation.override("en"):
        text = RunJobCommand().create_parser("manage.py", "run_job").format_help()
    assert "Run a job now, in this process" in text


@pytest.mark.django_db
@pytest.mark.parametrize("language", ["en", "zh-hans"])
def test_a_job_page_hides_recent_runs_from_who_may_not_view_runs_in_either_language(
    client, django_user_model, language
):
    """The section is left out by its field, not by its title (which is "最近运行" in Chinese)."""
    from django.contrib.auth.models import Permission

    job_services.job_create(data={"id": "seen", "interval_seconds": 60, "url": URL})
    user = django_user_model.objects.create_user("viewer", password="pw-for-tests", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_job"))
    client.force_login(user)
    page = client.get("/admin/jobs/job/seen/change/", HTTP_ACCEPT_LANGUAGE=language).content.decode()
    assert page.count('class="fieldset-heading"') >= 2  # the job's sections are there
    assert ">Recent runs</h2>" not in page
    assert ">最近运行</h2>" not in page


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("language_code", "error"),
    [("en", "Cancelled by root before it started."), ("zh-hans", "在开始前被 root 取消。")],
)
def test_a_run_cancelled_through_the_api_stores_its_error_in_language_code(api, settings, language_code, error):
    """Stored on the run for every reader: in the deployment's language, not the canceller's."""
    settings.LANGUAGE_CODE = language_code
    job = job_services.job_create(data={"id": "queued", "interval_seconds": 60, "url": URL})
    run = Run.objects.create(job=job, trigger="manual", status="queued")
    answer = api.post(f"/api/runs/{run.pk}/cancel/", HTTP_ACCEPT_LANGUAGE="zh-hans" if language_code == "en" else "en")
    assert answer.status_code == 200
    run.refresh_from_db()
    assert (run.status, run.error) == ("cancelled", error)
