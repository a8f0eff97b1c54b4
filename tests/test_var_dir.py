"""Importing the settings writes nothing; ``init_var`` (and ``runall``, which ``bin/run`` starts)
makes the embedded defaults' directories and the install's secret key."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command

from crontask.management.commands import runall

ROOT = Path(__file__).resolve().parents[1]
# Variables that would point the settings away from the embedded defaults (or supply the key).
NOT_DEFAULTS = ("DATABASE_URL", "CELERY_BROKER_URL", "SECRET_KEY", "STATIC_ROOT")


def in_a_new_process(var_dir: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    """``python *args`` from the checkout, on the embedded defaults with ``var_dir`` as var/."""
    environ = {k: v for k, v in os.environ.items() if k not in NOT_DEFAULTS and not k.startswith("CRONTASK_")}
    environ.update(CRONTASK_VAR_DIR=str(var_dir), DJANGO_SETTINGS_MODULE="crontask.settings", **env)
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=environ, capture_output=True, text=True, timeout=60)


def tree(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*"))


def test_importing_the_settings_and_the_celery_app_writes_nothing(tmp_path):
    var_dir = tmp_path / "var"
    code = (
        "import django, json; django.setup(); from django.conf import settings; from crontask.celery import app;"
        "options = app.conf.broker_transport_options; database = settings.DATABASES['default']['NAME'];"
        "print(json.dumps([database, options['data_folder_in'], str(settings.STATIC_ROOT)]))"
    )
    done = in_a_new_process(var_dir, "-c", code)
    assert done.returncode == 0, done.stderr
    database, queue, static = json.loads(done.stdout.strip().splitlines()[-1])
    # The defaults point into var/ ...
    assert Path(database).parent == Path(queue).parent.parent == Path(static).parent == var_dir
    # ... and nothing was made there, or anywhere under tmp_path.
    assert tree(tmp_path) == []


def test_without_a_key_the_settings_have_none_and_the_web_refuses_to_start(tmp_path):
    no_key = in_a_new_process(
        tmp_path, "-c", "import django; django.setup(); from django.conf import settings; settings.SECRET_KEY"
    )
    assert no_key.returncode != 0
    assert "The SECRET_KEY setting must not be empty" in no_key.stderr
    web = in_a_new_process(tmp_path, "-c", "import crontask.wsgi")
    assert web.returncode != 0
    assert "SECRET_KEY is not set" in web.stderr
    assert "manage.py init_var" in web.stderr
    assert tree(tmp_path) == []
    assert in_a_new_process(tmp_path, "-c", "import crontask.wsgi", SECRET_KEY="set-by-the-operator").returncode == 0


def test_init_var_makes_the_directories_and_a_private_key_once(tmp_path):
    var_dir = tmp_path / "var"
    first = in_a_new_process(var_dir, "manage.py", "init_var")
    assert first.returncode == 0, first.stderr
    assert first.stdout.startswith("Created ")
    assert {"broker/queue", "broker/processed", "broker/control", "static", "secret_key"} <= set(tree(var_dir))
    key_file = var_dir / "secret_key"
    key = key_file.read_text()
    assert len(key) >= 50
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert [name for name in os.listdir(var_dir) if name.startswith(".secret_key")] == []  # no temporary left

    again = in_a_new_process(var_dir, "manage.py", "init_var")
    assert again.returncode == 0, again.stderr
    assert "Nothing to create" in again.stdout
    assert key_file.read_text() == key
    # Every process of the install (web, worker, beat) reads that key.
    read = "import django; django.setup(); from django.conf import settings; print(settings.SECRET_KEY)"
    assert in_a_new_process(var_dir, "-c", read).stdout.strip() == key


def test_init_var_writes_no_key_when_one_is_set(tmp_path):
    done = in_a_new_process(tmp_path / "var", "manage.py", "init_var", SECRET_KEY="set-by-the-operator")
    assert done.returncode == 0, done.stderr
    assert not (tmp_path / "var" / "secret_key").exists()
    assert (tmp_path / "var" / "broker" / "queue").is_dir()


def test_the_checks_say_to_run_init_var_while_var_is_missing(tmp_path):
    var_dir = tmp_path / "var"
    before = in_a_new_process(var_dir, "manage.py", "check")
    assert before.returncode == 0, before.stderr
    assert "crontask.W001" in before.stderr
    assert "manage.py init_var" in before.stderr
    in_a_new_process(var_dir, "manage.py", "init_var")
    after = in_a_new_process(var_dir, "manage.py", "check")
    assert "crontask.W001" not in after.stderr


@pytest.mark.django_db
def test_runall_makes_var_before_anything_else(monkeypatch):
    steps: list[str] = []
    monkeypatch.delenv("CRONTASK_ADMIN_PASSWORD", raising=False)

    def prepare_var_dir() -> list:
        steps.append("prepare_var_dir")
        return []

    def supervise(self, commands) -> int:
        steps.append("start")
        return 0

    monkeypatch.setattr(runall, "prepare_var_dir", prepare_var_dir)
    monkeypatch.setattr(runall, "call_command", lambda name, *args, **kwargs: steps.append(name))
    monkeypatch.setattr(runall.Command, "_supervise", supervise)
    with pytest.raises(SystemExit):
        call_command("runall", stdout=StringIO())
    assert steps == ["prepare_var_dir", "migrate", "collectstatic", "start"]
