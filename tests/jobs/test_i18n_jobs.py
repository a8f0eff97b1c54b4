# ruff: noqa: RUF001 - the expected Chinese messages use full-width punctuation, as the catalogue does
"""The jobs app in Simplified Chinese (issue #22): handler and expression errors, import reports,
command help, egress refusals and version reasons are translated, and a translated handler error
still lands on the field it is about."""

from __future__ import annotations

import os
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command, load_command_class
from django.utils import translation

from jobs import services
from jobs.models import JobVersion

ROOT = Path(__file__).resolve().parents[2]
TEST_SCRIPTS = ROOT / "tests" / "scripts"
ZH = {"HTTP_ACCEPT_LANGUAGE": "zh-hans"}


@pytest.fixture(autouse=True)
def test_scripts(settings):
    settings.CRONTASK_SCRIPTS_DIR = TEST_SCRIPTS


def python_job(**kwargs: object) -> dict[str, object]:
    return {"id": "py", "interval_seconds": 60, "handler": "scripts:echo_kwargs", **kwargs}


@pytest.mark.django_db
def test_a_bad_kwarg_is_reported_in_chinese_under_handler_kwargs(api):
    """The field is not guessed from the message's English words: in Chinese it is still handler_kwargs."""
    unknown = api.post("/api/jobs/", python_job(handler_kwargs={"count": 1, "colour": "red"}), format="json", **ZH)
    assert unknown.status_code == 400
    assert set(unknown.json()) == {"handler_kwargs"}
    assert unknown.json()["handler_kwargs"][0].startswith("未知参数 'colour'：scripts:echo_kwargs 接受的参数为 count")

    missing = api.post("/api/jobs/", python_job(handler_kwargs={}), format="json", **ZH)
    assert missing.status_code == 400
    assert missing.json() == {"handler_kwargs": ["缺少必需参数 'count'。"]}

    wrong_type = api.post("/api/jobs/", python_job(handler_kwargs={"count": "one"}), format="json", **ZH)
    assert wrong_type.json()["handler_kwargs"] == ["参数 'count' 必须是整数，而不是 str 'one'。"]


@pytest.mark.django_db
def test_a_handler_that_cannot_be_found_is_reported_in_chinese_under_handler(api):
    response = api.post("/api/jobs/", python_job(handler="scripts:nope", handler_kwargs={}), format="json", **ZH)
    assert response.status_code == 400
    assert response.json() == {"handler": ["没有脚本 'nope'：scripts 文件夹中没有 nope.py。"]}


@pytest.mark.django_db
def test_an_expression_error_is_reported_in_chinese(api):
    kwargs = {"count": {"$expr": "os.system('true')"}}
    response = api.post("/api/jobs/", python_job(handler_kwargs=kwargs), format="json", **ZH)
    assert response.status_code == 400
    [message] = response.json()["handler_kwargs"]
    assert message.startswith("参数 'count'：不允许名称 'os'；允许的名称：")

    nested = {"count": 1, "tags": [{"$expr": "[x for x in 'ab']"}]}
    response = api.post("/api/jobs/", python_job(handler_kwargs=nested), format="json", **ZH)
    assert response.json()["handler_kwargs"] == ["参数 'tags' 的 [0] 处：不允许 推导式"]


@pytest.mark.django_db
def test_an_egress_refusal_is_in_chinese(api):
    body = {"id": "meta", "interval_seconds": 60, "url": "http://169.254.169.254/latest/"}
    response = api.post("/api/jobs/", body, format="json", **ZH)
    assert response.status_code == 400
    assert response.json()["url"] == ["出站被拒绝：169.254.169.254 是云元数据地址（CRONTASK_EGRESS_DENY，内置）。"]


@pytest.mark.django_db
def test_import_jobs_reports_a_bad_crontab_line_and_its_summary_in_chinese(tmp_path, settings):
    settings.CRONTASK_ALLOW_SHELL = True
    crontab = tmp_path / "crontab"
    crontab.write_text("*/5 * * * * /bin/true\n* * * echo\n@reboot /bin/never\n")
    out, err = StringIO(), StringIO()
    with translation.override("zh-hans"), pytest.raises(SystemExit):
        call_command("import_jobs", str(crontab), stdout=out, stderr=err)
    assert "无效 第 2 行：应为五个调度字段加一条命令。" in err.getvalue()
    assert "无效 第 3 行：不支持 @reboot（仅支持 @daily 等时间宏）。" in err.getvalue()
    assert out.getvalue().strip() == "新建 1，更新 0，未变 0，无效 2"


def test_a_command_help_is_in_chinese():
    with translation.override("zh-hans"):
        command = load_command_class("jobs", "import_jobs")
        text = command.create_parser("manage.py", "import_jobs").format_help()
    assert command.help.startswith("从 JSON 或 YAML 列表")
    assert "检查每个条目并计数；不做任何更改" in text
    with translation.override("en"):
        assert load_command_class("jobs", "import_jobs").help.startswith("Create or update jobs")


def test_manage_py_help_speaks_language_code(tmp_path):
    env = {**os.environ, "LANGUAGE_CODE": "zh-hans", "CRONTASK_VAR_DIR": str(tmp_path / "var")}
    result = subprocess.run(
        [sys.executable, "manage.py", "export_jobs", "--help"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert "将所有任务写成 import_jobs 可读回的 JSON" in result.stdout
    assert "json（默认）或 yaml。" in result.stdout


@pytest.mark.django_db
def test_a_revert_records_its_reason_in_the_deployments_language_whoever_asks(settings):
    # Stored texts do not follow the reader: a version's reason is in LANGUAGE_CODE, as a run's error.
    job = services.job_create(data={"id": "j", "interval_seconds": 60, "url": "http://127.0.0.1:9/"})
    services.job_update(job=job, data={"interval_seconds": 120})
    settings.LANGUAGE_CODE = "zh-hans"
    with translation.override("en"):
        services.job_revert(job=job, number=1)
    assert JobVersion.objects.filter(job_id="j").latest("number").reason == "已回滚到版本 1。"
    settings.LANGUAGE_CODE = "en-us"
    with translation.override("zh-hans"):
        services.job_revert(job=job, number=2)
    assert JobVersion.objects.filter(job_id="j").latest("number").reason == "Reverted to version 2."
