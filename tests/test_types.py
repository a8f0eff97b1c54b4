"""The type check bin/test runs (mypy, configured in pyproject.toml) fails on a type error, and its
Django plugin knows the models: a module with a deliberate error of each kind fails, the same
module without them passes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MYPY = Path(sys.executable).parent / "mypy"

CORRECT = """\
from jobs.models import Job


def name_length(job: Job) -> int:
    return len(job.name)


def any_active() -> bool:
    return Job.objects.filter(status=Job.Status.ACTIVE).exists()
"""

WRONG = """\
from jobs.models import Job


def name_length(job: Job) -> int:
    return job.name


def any_active() -> bool:
    return Job.objects.filter(no_such_field=Job.Status.ACTIVE).exists()
"""


def mypy(module: Path, cache: Path) -> subprocess.CompletedProcess[str]:
    """The project's configuration on ``module`` alone (the modules it imports are read, not reported)."""
    return subprocess.run(
        [str(MYPY), "--config-file", str(ROOT / "pyproject.toml"), "--cache-dir", str(cache),
         "--follow-imports", "silent", str(module)],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def test_bin_test_runs_the_type_check():
    assert ".venv/bin/mypy" in (ROOT / "bin" / "test").read_text()


def test_the_type_check_fails_on_a_type_error_and_on_a_field_the_model_lacks(tmp_path):
    module = tmp_path / "deliberate.py"
    module.write_text(CORRECT)
    done = mypy(module, tmp_path / "cache")
    assert done.returncode == 0, done.stdout + done.stderr

    module.write_text(WRONG)
    done = mypy(module, tmp_path / "cache")
    assert done.returncode == 1, done.stdout + done.stderr
    assert 'deliberate.py:5: error: Incompatible return value type (got "str", expected "int")' in done.stdout
    assert "deliberate.py:9: error: Cannot resolve keyword 'no_such_field' into field." in done.stdout


def test_every_app_is_type_checked():
    """A new app is named in .importlinter's root packages; the type check must cover it too."""
    import configparser
    import tomllib

    linter = configparser.ConfigParser()
    linter.read(ROOT / ".importlinter")
    apps = set(linter["importlinter"]["root_packages"].split())
    checked = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mypy"]["files"])
    assert apps, "no root packages found in .importlinter"
    assert apps <= checked, sorted(apps - checked)
