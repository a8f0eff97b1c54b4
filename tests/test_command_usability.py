"""The commands as an operator meets them (issue #22): help for every argument, clean errors,
exports of every job, crontab lines named by number, what a dry run would do, progress and summaries."""

from __future__ import annotations

import argparse
import io
import json
from datetime import timedelta
from io import StringIO

import pytest
import yaml
from django.core.management import call_command, get_commands, load_command_class
from django.core.management.base import CommandError
from django.utils import timezone

from jobs import services
from jobs.models import Job
from runs.models import Run

pytestmark = pytest.mark.django_db
URL = "http://127.0.0.1:9/"
OURS = ("jobs", "runs", "audit", "crontask", "monitoring")


class Terminal(io.StringIO):
    """A stream that says it is a terminal, as a command's stderr is in an interactive shell."""

    def isatty(self) -> bool:
        return True


def run(*args: str, stderr: StringIO | None = None) -> tuple[str, str, int]:
    out, err = StringIO(), stderr if stderr is not None else StringIO()
    try:
        call_command(*args, stdout=out, stderr=err)
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    return out.getvalue(), err.getvalue(), code


def our_commands() -> list[tuple[str, str]]:
    return sorted((name, app) for name, app in get_commands().items() if app in OURS)


def test_our_commands_are_found():
    names = {name for name, _ in our_commands()}
    assert {"import_jobs", "export_jobs", "cleanup_runs", "sync_schedules", "run_job", "healthcheck"} <= names


@pytest.mark.parametrize(("name", "app"), our_commands())
def test_it_gives_every_argument_of_every_command_help(name, app):
    command = load_command_class(app, name)
    assert command.help.strip(), name
    parser = command.create_parser("manage.py", name)
    missing = [
        action.dest
        for action in parser._actions
        if not isinstance(action, argparse._HelpAction) and not (action.help or "").strip()
    ]
    assert missing == [], f"{name}: {missing} have no help text"


def test_it_exports_completed_and_paused_jobs_as_yaml_with_plain_strings(tmp_path):
    services.job_create(data={"id": "paused", "interval_seconds": 60, "url": URL, "status": "paused"})
    done = services.job_create(data={"id": "done", "run_at": "2099-01-01T00:00:00+00:00", "url": URL})
    Job.objects.filter(pk=done.pk).update(status=Job.Status.COMPLETED, next_run_at=None)
    out, err, code = run("export_jobs", "--format", "yaml")
    assert (err, code) == ("", 0)
    assert "!!python" not in out
    exported = {job["id"]: job for job in yaml.safe_load(out)}
    assert exported["done"]["status"] == "paused"  # a finished one-off comes back paused
    assert exported["paused"]["status"] == "paused"
    assert type(exported["done"]["kind"]) is str


def test_it_exports_a_job_built_in_memory_with_enum_values():
    from jobs.importer import export_job

    job = services.job_create(data={"id": "fresh", "interval_seconds": 60, "url": URL})
    job.status = Job.Status.COMPLETED  # as a service leaves it on the instance: a TextChoices member
    job.kind = Job.Kind.HTTP
    data = export_job(job)
    assert {type(data["status"]), type(data["kind"])} == {str}
    yaml.safe_dump([data])


def test_it_refuses_an_output_in_a_missing_folder_with_a_clean_error(tmp_path):
    services.job_create(data={"id": "a", "interval_seconds": 60, "url": URL})
    with pytest.raises(CommandError, match=r"Cannot write .*missing/x\.json: No such file or directory"):
        call_command("export_jobs", "-o", str(tmp_path / "missing" / "x.json"))
    with pytest.raises(CommandError, match="Cannot write"):
        call_command("export_jobs", "-o", str(tmp_path))  # a folder, not a file


def test_it_refuses_an_unreadable_import_with_a_clean_error(tmp_path):
    with pytest.raises(CommandError, match="No such file"):
        call_command("import_jobs", str(tmp_path / "nope.json"))
    binary = tmp_path / "crontab"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(CommandError, match="crontab"):
        call_command("import_jobs", str(binary))


def test_it_names_invalid_crontab_lines_by_their_line_number(tmp_path, settings):
    settings.CRONTASK_ALLOW_SHELL = True
    crontab = tmp_path / "crontab"
    crontab.write_text("# header\n*/5 * * * * /bin/true\n\n61 * * * * /bin/false\n@reboot /bin/never\n")
    out, err, code = run("import_jobs", str(crontab))
    assert code == 1
    assert "invalid line 4: cron: Invalid cron expression" in err
    assert "invalid line 5: @reboot is not supported" in err
    assert "crontab-" not in err
    assert out.strip() == "created 1, updated 0, unchanged 0, invalid 2"


def test_a_dry_run_at_verbosity_2_lists_each_job_it_would_create(tmp_path, settings):
    settings.CRONTASK_ALLOW_SHELL = True
    services.job_create(data={"id": "kept", "interval_seconds": 60, "url": URL})
    services.job_create(data={"id": "moved", "interval_seconds": 60, "url": URL})
    entries = [
        {"id": "new-one", "interval_seconds": 60, "url": URL},
        {"id": "kept", "interval_seconds": 60, "url": URL},
        {"id": "moved", "interval_seconds": 30, "url": URL},
    ]
    path = tmp_path / "jobs.json"
    path.write_text(json.dumps(entries))
    out, _, code = run("import_jobs", str(path), "--dry-run", "-v", "2")
    assert code == 0
    assert out.splitlines() == [
        "would create new-one",
        "unchanged kept",
        "would update moved",
        "Dry run: created 1, updated 1, unchanged 1, invalid 0",
    ]
    assert not Job.objects.filter(pk="new-one").exists()
    crontab = tmp_path / "crontab"
    crontab.write_text("*/5 * * * * /bin/true\n")
    out, _, _ = run("import_jobs", str(crontab), "--dry-run", "-v", "2")
    (line,) = [line for line in out.splitlines() if line.startswith("would create")]
    assert line.startswith("would create crontab-")
    assert line.endswith(" (line 1)")
    assert run("import_jobs", str(path), "--dry-run")[0].count("\n") == 1  # -v 1: the summary alone


def test_it_draws_progress_bars_only_on_a_terminal(tmp_path):
    path = tmp_path / "jobs.json"
    path.write_text(json.dumps([{"id": f"j{i}", "interval_seconds": 60, "url": URL} for i in range(5)]))
    _, err, _ = run("import_jobs", str(path), "--dry-run")
    assert err == ""  # not a terminal: no bar
    _, err, _ = run("import_jobs", str(path), stderr=Terminal())
    assert err.endswith("\r[" + "#" * 40 + "] 5/5 jobs\n")
    out, err, _ = run("sync_schedules", stderr=Terminal())
    assert "] 6/6 jobs\n" in err  # the five and the cleanup system job
    assert out.startswith("Synced 6 jobs")
    assert "\r" not in out


def test_cleanup_shows_progress_and_says_what_it_deleted_and_kept():
    job = services.job_create(data={"id": "j", "interval_seconds": 60, "url": URL})
    old = timezone.now() - timedelta(days=40)
    Run.objects.bulk_create(
        [Run(job=job, trigger="scheduled", status="success", queued_at=old + timedelta(seconds=i)) for i in range(10)]
        + [Run(job=job, trigger="scheduled", status="success", queued_at=timezone.now())]
    )
    out, err, code = run(
        "cleanup_runs", "--older-than", "30d", "--keep-per-job", "3", "--batch-size", "4", stderr=Terminal()
    )
    assert code == 0
    assert out == "Deleted 8 runs older than 30d; kept 2 older ones (not finished, or among each job's newest 3).\n"
    assert err.endswith("[" + "#" * 40 + "] 10/10 runs\n")  # filled at the end: 2 of the 10 were kept
    out, err, _ = run("cleanup_runs", "--older-than", "30d")
    assert (out, err) == ("Deleted 2 runs older than 30d; kept 0 older ones (not finished).\n", "")
