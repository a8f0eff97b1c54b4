"""English and Simplified Chinese: the catalogues are complete and compiled, every marked string is
in them, and requests, the API and the commands speak the language asked for."""

from __future__ import annotations

import ast
import gettext
import os
import shutil
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command
from django.utils import translation

from jobs import services
from jobs.models import Job

ROOT = Path(__file__).resolve().parent.parent
LOCALE = ROOT / "locale" / "zh_Hans" / "LC_MESSAGES"
DOMAINS = ("django", "djangojs")
# What makemessages reads (docs/contract.md, "Languages"): the code and templates, not these.
IGNORED = (".venv", "tests", "bench", "var", "scripts", "*/static/admin/*")


def parse_po(path: Path) -> list[dict]:
    """The entries of a .po file: msgctxt, msgid, msgid_plural, msgstr (a list), flags. A few lines
    of Python, as gettext's own format is simple: keyword lines and quoted continuation lines."""
    entries: list[dict] = []
    entry: dict = {"flags": set(), "msgstr": []}
    key = ""
    for line in [*path.read_text(encoding="utf-8").splitlines(), ""]:
        if line.startswith("#,"):
            entry["flags"] |= {flag.strip() for flag in line[2:].split(",")}
        elif line.startswith(("msgctxt ", "msgid ", "msgid_plural ", "msgstr")):
            keyword, _, text = line.partition(" ")
            if keyword == "msgid" and "msgid" in entry:  # a new entry without a blank line before it
                entries.append(entry)
                entry = {"flags": set(), "msgstr": []}
            key = "msgstr" if keyword.startswith("msgstr") else keyword
            if key == "msgstr":
                entry["msgstr"].append(ast.literal_eval(text))
            else:
                entry[key] = ast.literal_eval(text)
        elif line.startswith('"'):
            if key == "msgstr":
                entry["msgstr"][-1] += ast.literal_eval(line)
            else:
                entry[key] += ast.literal_eval(line)
        elif not line.strip() and "msgid" in entry:
            entries.append(entry)
            entry = {"flags": set(), "msgstr": []}
    return [e for e in entries if e["msgid"]]  # not the header


def msg_key(entry: dict) -> tuple[str | None, str]:
    return entry.get("msgctxt"), entry["msgid"]


@pytest.mark.parametrize("domain", DOMAINS)
def test_it_translates_every_entry_of_the_catalogue(domain):
    entries = parse_po(LOCALE / f"{domain}.po")
    assert entries
    untranslated = [msg_key(e) for e in entries if not all(s.strip() for s in e["msgstr"])]
    fuzzy = [msg_key(e) for e in entries if "fuzzy" in e["flags"]]
    assert untranslated == [], f"untranslated in {domain}.po"
    assert fuzzy == [], f"fuzzy in {domain}.po"


@pytest.mark.parametrize("domain", DOMAINS)
def test_it_ships_a_compiled_catalogue_that_matches_the_po(domain):
    """The committed .mo says what the .po says (a fresh clone needs no gettext tools to run)."""
    with (LOCALE / f"{domain}.mo").open("rb") as mo:
        compiled = gettext.GNUTranslations(mo)._catalog  # type: ignore[attr-defined]
    expected: dict[object, str] = {}
    for entry in parse_po(LOCALE / f"{domain}.po"):
        msgid = entry["msgid"] if "msgctxt" not in entry else f"{entry['msgctxt']}\x04{entry['msgid']}"
        if "msgid_plural" in entry:
            expected.update({(msgid, n): text for n, text in enumerate(entry["msgstr"])})
        else:
            expected[msgid] = entry["msgstr"][0]
    shipped = {key: value for key, value in compiled.items() if key != ""}  # "" is the header
    assert shipped == expected, f"locale/zh_Hans/LC_MESSAGES/{domain}.mo is stale: run manage.py compilemessages"


@pytest.mark.parametrize("domain", DOMAINS)
def test_it_passes_msgfmt_check(domain):
    """Placeholders (%(n)d, %s) match between each msgid and its translation, and the header is valid."""
    if shutil.which("msgfmt") is None:
        pytest.skip("msgfmt (gettext) is not installed")
    result = subprocess.run(
        ["msgfmt", "--check", "-o", os.devnull, str(LOCALE / f"{domain}.po")], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr


def test_every_marked_string_is_in_the_catalogue(tmp_path):
    """makemessages, run on a copy of the code, finds no msgid the committed catalogues lack: a string
    marked for translation and not yet translated fails here (and an unmarked one shows in Chinese
    screenshots, tests/browser)."""
    if shutil.which("xgettext") is None:
        pytest.skip("xgettext (gettext) is not installed")
    copy = tmp_path / "src"
    shutil.copytree(
        ROOT, copy, ignore=shutil.ignore_patterns(".git", ".venv", "var", "test-output", "node_modules", "*.pyc")
    )
    shutil.rmtree(copy / "locale")
    ignores = [f"--ignore={pattern}" for pattern in IGNORED]
    env = {**os.environ, "CRONTASK_VAR_DIR": str(tmp_path / "var")}
    for domain in DOMAINS:
        subprocess.run(
            [sys.executable, "manage.py", "makemessages", "-l", "zh_Hans", "-d", domain, "--no-location", *ignores],
            cwd=copy,
            env=env,
            check=True,
            capture_output=True,
        )
        found = {msg_key(e) for e in parse_po(copy / "locale" / "zh_Hans" / "LC_MESSAGES" / f"{domain}.po")}
        committed = {msg_key(e) for e in parse_po(LOCALE / f"{domain}.po")}
        assert found - committed == set(), f"marked but not in {domain}.po: run makemessages and translate"
        assert committed - found == set(), f"in {domain}.po but no longer marked: run makemessages"


def test_it_offers_english_and_simplified_chinese():
    assert settings.LANGUAGES == [("en", "English"), ("zh-hans", "简体中文")]
    assert "django.middleware.locale.LocaleMiddleware" in settings.MIDDLEWARE
    middleware = settings.MIDDLEWARE
    locale = middleware.index("django.middleware.locale.LocaleMiddleware")
    assert middleware.index("django.contrib.sessions.middleware.SessionMiddleware") < locale
    assert locale < middleware.index("django.middleware.common.CommonMiddleware")


def test_it_reads_the_default_language_from_the_environment():
    code = "from django.conf import settings; print(settings.LANGUAGE_CODE)"
    env = {**os.environ, "LANGUAGE_CODE": "zh-hans", "DJANGO_SETTINGS_MODULE": "crontask.settings"}
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup(); " + code],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.strip() == "zh-hans"


@pytest.mark.django_db
def test_the_api_answers_a_400_in_the_language_asked_for(api):
    body = {"id": "bad-cron", "cron": "not a cron", "url": "http://127.0.0.1:9/"}
    chinese = api.post("/api/jobs/", body, format="json", HTTP_ACCEPT_LANGUAGE="zh-hans")
    assert chinese.status_code == 400
    assert "cron" in chinese.json()
    assert "Cron 表达式有 5 个字段" in chinese.json()["cron"][0]
    english = api.post("/api/jobs/", body, format="json", HTTP_ACCEPT_LANGUAGE="en")
    assert english.status_code == 400
    assert "A cron expression has 5 fields" in english.json()["cron"][0]


@pytest.mark.django_db
def test_the_api_speaks_chinese_to_a_browser_that_asks_for_zh_cn(api):
    response = api.post(
        "/api/jobs/", {"id": "x", "interval_seconds": 0}, format="json", HTTP_ACCEPT_LANGUAGE="zh-CN,zh;q=0.9"
    )
    assert response.status_code == 400
    assert response["Content-Language"] == "zh-hans"
    assert any("至少为 1 秒" in message for message in response.json()["interval_seconds"])


@pytest.mark.django_db
def test_the_admin_follows_accept_language_and_the_language_switch(client, admin_user):
    client.force_login(admin_user)
    page = client.get("/admin/jobs/job/", HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
    assert "任务" in page
    assert 'id="ct-language-select"' in page
    assert "Deleted jobs" not in page
    assert "已删除的任务" in page
    # The switch: Django's set_language keeps the choice in a cookie, over Accept-Language.
    response = client.post("/i18n/setlang/", {"language": "en", "next": "/admin/jobs/job/"})
    assert response.status_code == 302
    assert response["Location"] == "/admin/jobs/job/"
    page = client.get("/admin/jobs/job/", HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
    assert "Deleted jobs" in page
    assert "已删除的任务" not in page


@pytest.mark.django_db
def test_the_scripts_get_their_words_in_the_language_of_the_page(client):
    catalogue = client.get("/jsi18n/", HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
    assert "\\u5b9e\\u65f6" in catalogue or "实时" in catalogue  # "Live: following the run."


@pytest.mark.django_db
def test_a_command_summary_speaks_the_active_language():
    services.job_create(data={"id": "i18n-sync", "interval_seconds": 60, "url": "http://127.0.0.1:9/"})
    out = StringIO()
    with translation.override("zh-hans"):
        call_command("sync_schedules", stdout=out, stderr=StringIO())
    assert "已同步" in out.getvalue()
    assert "个任务" in out.getvalue()
    out = StringIO()
    with translation.override("en"):
        call_command("sync_schedules", stdout=out, stderr=StringIO())
    assert out.getvalue().startswith("Synced ")
    assert Job.objects.filter(pk="i18n-sync").exists()


def test_a_validation_message_is_translated_where_it_is_raised():
    from django.core.exceptions import ValidationError

    from jobs.triggers import validate_cron

    with translation.override("zh-hans"), pytest.raises(ValidationError) as raised:
        validate_cron("61 * * * *")
    assert "无效的 cron 表达式" in raised.value.messages[0]


def test_a_command_speaks_language_code_from_the_environment(tmp_path):
    """No request, no override: a command's summary is in LANGUAGE_CODE (here set for the process)."""
    env = {
        **os.environ,
        "LANGUAGE_CODE": "zh-hans",
        "CRONTASK_VAR_DIR": str(tmp_path / "var"),
        "STATIC_ROOT": str(tmp_path / "static"),
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "init_var"], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )
    assert result.stdout.startswith("已创建 ")


def test_a_language_code_crontask_does_not_speak_is_refused_at_start():
    from django.core.checks.translation import check_language_settings_consistent
    from django.test import override_settings

    with override_settings(LANGUAGE_CODE="fr"):
        assert [error.id for error in check_language_settings_consistent(None)] == ["translation.E004"]
    with override_settings(LANGUAGE_CODE="zh-hans"):
        assert check_language_settings_consistent(None) == []
