from __future__ import annotations

import time

import psutil
import pytest
from django.core.exceptions import ValidationError

from jobs import services as job_services
from runs.executors.shell import command_argv, execute_shell, needs_shell
from runs.models import Run
from runs.tasks import execute_job

pytestmark = pytest.mark.django_db
FIRE = "2026-03-02T10:01:00+00:00"


@pytest.fixture
def shell_allowed(settings):
    settings.CRONTASK_ALLOW_SHELL = True


def run_command(command: str, **extra) -> Run:
    job_services.job_create(data={"id": "sh", "kind": "shell", "command": command, **extra})
    execute_job.apply(kwargs={"job_id": "sh", "scheduled_for": FIRE}, throw=True)
    return Run.objects.get(job_id="sh")


def test_it_runs_without_a_shell_unless_the_command_needs_one():
    assert command_argv("echo 'hello world'") == ["echo", "hello world"]
    assert not needs_shell("python -c 'print(1)'")
    for command in ("echo a | tr a b", "echo $HOME", "ls *.py", "a && b", "echo x > f"):
        assert needs_shell(command)
        assert command_argv(command) == ["/bin/sh", "-c", command]


def test_stdout_stderr_and_the_exit_code_are_kept(shell_allowed):
    run = run_command("sh -c 'echo out; echo err >&2'")
    assert (run.status, run.exit_code) == ("success", 0)
    assert run.output == "out\nerr\n"
    assert run.target == "sh -c 'echo out; echo err >&2'"


def test_a_pipeline_runs_in_a_shell(shell_allowed):
    assert run_command("echo abc | tr a-c x-z").output == "xyz\n"


def test_a_non_zero_exit_is_a_failed_run(shell_allowed):
    run = run_command("sh -c 'echo partial; exit 3'")
    assert (run.status, run.exit_code, run.error) == ("failed", 3, "Exit code 3.")
    assert run.output == "partial\n"


def test_an_unknown_program_is_a_failed_run_with_the_reason(shell_allowed):
    run = run_command("no-such-program-here --flag")
    assert run.status == "failed"
    assert "No such file" in run.error


def test_a_command_past_its_timeout_is_killed_with_its_children(shell_allowed, tmp_path):
    pidfile = tmp_path / "child.pid"
    started = time.monotonic()
    run = run_command(f"sh -c 'sleep 30 & echo $! > {pidfile}; wait'", timeout_seconds=1)
    assert run.status == "timeout"
    assert time.monotonic() - started < 4
    child = int(pidfile.read_text())

    def dead() -> bool:
        try:
            return psutil.Process(child).status() == psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return True

    # SIGKILL was sent to the whole group before the outcome came back; on a loaded machine the
    # child may not have been scheduled to die yet when this looks (it was still "running" once).
    deadline = time.monotonic() + 5
    while not dead() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert dead()


def test_large_output_is_cut_with_a_marker():
    outcome = execute_shell(command="python3 -c 'print(\"y\" * 5000)'", timeout=10, max_bytes=1024)
    assert outcome.output.startswith("y" * 1024)
    assert "truncated: 3977 more bytes" in outcome.output


def test_shell_jobs_are_refused_at_save_unless_allowed():
    with pytest.raises(ValidationError) as exc:
        job_services.job_create(data={"id": "sh", "kind": "shell", "command": "echo hi"})
    assert "CRONTASK_ALLOW_SHELL" in exc.value.message_dict["kind"][0]


def test_shell_jobs_are_refused_at_run_time_when_shell_is_turned_off(settings):
    settings.CRONTASK_ALLOW_SHELL = True
    job_services.job_create(data={"id": "sh", "kind": "shell", "command": "echo hi"})
    settings.CRONTASK_ALLOW_SHELL = False
    execute_job.apply(kwargs={"job_id": "sh", "scheduled_for": FIRE}, throw=True)
    run = Run.objects.get(job_id="sh")
    assert run.status == "failed"
    assert "CRONTASK_ALLOW_SHELL" in run.error
    assert run.output == ""


def test_quoted_shell_characters_do_not_need_a_shell():
    assert not needs_shell("""python3 -c 'print("a|b; (c)")'""")
    assert needs_shell('echo "$HOME"')
    assert not needs_shell(r"echo a\;b")


def test_a_nul_byte_in_the_output_is_stored_as_a_replacement_character(shell_allowed):
    run = run_command("printf 'a\\0b'")
    assert (run.status, run.output) == ("success", "a\ufffdb")
