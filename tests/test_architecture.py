"""The dependency contracts in .importlinter hold, and breaking one fails lint-imports (so bin/test)."""

from __future__ import annotations

import configparser
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / ".importlinter"
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def root_packages() -> list[str]:
    config = configparser.ConfigParser()
    config.read(CONFIG)
    return config["importlinter"]["root_packages"].split()


def lint_imports(where: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(where)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--no-logo", str(where / ".importlinter")],
        cwd=where, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A copy of the project's packages and contracts, to break."""
    for package in root_packages():
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(CONFIG, tmp_path / ".importlinter")
    return tmp_path


def test_it_keeps_the_contracts():
    done = lint_imports(ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout


def test_it_fails_when_jobs_imports_runs(tree):
    assert lint_imports(tree).returncode == 0  # the copy as it is keeps them
    with (tree / "jobs" / "filters.py").open("a") as module:
        module.write("\nfrom runs import models  # noqa\n")
    done = lint_imports(tree)
    assert done.returncode != 0
    assert "BROKEN" in done.stdout
    assert "jobs.filters -> runs.models" in done.stdout


def test_it_fails_when_jobs_imports_the_project(tree):
    with (tree / "jobs" / "filters.py").open("a") as module:
        module.write("\nfrom crontask import settings  # noqa\n")
    done = lint_imports(tree)
    assert done.returncode != 0
    assert "jobs.filters -> crontask.settings" in done.stdout


def test_it_fails_on_an_import_cycle_within_a_package(tree):
    with (tree / "runs" / "models.py").open("a") as module:
        module.write("\nfrom runs import outcomes  # noqa\n")  # runs.outcomes imports runs.models
    done = lint_imports(tree)
    assert done.returncode != 0
    assert "No cycles are allowed in runs" in done.stdout


def test_jobs_names_the_scheduled_run_trigger_as_runs_does():
    """jobs.services reads whether beat fired a one-off through ``job.runs`` (runs sit above jobs)."""
    from jobs.services import SCHEDULED_RUN
    from runs.models import Run

    assert Run.Trigger.SCHEDULED == SCHEDULED_RUN


def test_it_fails_when_heartbeats_imports_a_domain_app(tree):
    """beat and the workers record heartbeats, and monitoring reads them: heartbeats sits below them all."""
    with (tree / "heartbeats" / "services.py").open("a") as module:
        module.write("\nfrom jobs import models  # noqa\n")
    done = lint_imports(tree)
    assert done.returncode != 0
    assert "heartbeats.services -> jobs.models" in done.stdout


def test_it_fails_when_weizhi_and_monitoring_import_each_other(tree):
    with (tree / "weizhi" / "__init__.py").open("a") as module:
        module.write("\nfrom monitoring import health  # noqa\n")
    done = lint_imports(tree)
    assert done.returncode != 0
    assert "weizhi -> monitoring.health" in done.stdout


def test_the_project_package_holds_no_model():
    from django.apps import apps

    assert list(apps.get_app_config("crontask").get_models()) == []
