"""The dependency contracts in .importlinter hold, and breaking one fails lint-imports (so bin/test)."""

from __future__ import annotations

import configparser
import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
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


@pytest.mark.django_db
def test_jobs_reads_no_run_to_resume_a_one_off_that_fired():
    """jobs sits below runs: whether beat fired a paused one-off is the job's own ``last_fired_at``
    (beat notes it as it claims the fire), not a query of the runs table through ``job.runs``."""
    import time_machine
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from jobs import services
    from runs.models import Run
    from scheduling.fires import claim_due_fires

    run_at = datetime(2026, 3, 2, 11, 0, tzinfo=UTC)
    with time_machine.travel(run_at - timedelta(hours=1), tick=False):
        job = services.job_create(data={"id": "once", "run_at": run_at.isoformat(), "url": "http://127.0.0.1:9/"})
    with time_machine.travel(run_at, tick=False):
        claim_due_fires(now=run_at, limit=10)  # the fire claimed; no run is recorded here
        services.job_pause(job=job)
    assert not Run.objects.exists()
    with time_machine.travel(run_at + timedelta(hours=1), tick=False), CaptureQueriesContext(connection) as queries:
        job = services.job_resume(job=job)
    assert job.status == "completed"
    assert not [q["sql"] for q in queries.captured_queries if Run._meta.db_table in q["sql"]]


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
