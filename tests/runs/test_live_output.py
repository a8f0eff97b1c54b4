"""A shell command's output reaches its run while the command is still going, as a log does: kept
to the output limit, its secrets masked, and only ever growing until the outcome is stored."""

from __future__ import annotations

import itertools
import threading
import time

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from jobs import services as job_services
from jobs.secrets import MASK
from runs import execution
from runs.execution import RunProgress
from runs.executors.base import Outcome, Progress
from runs.executors.shell import execute_shell
from runs.models import Run
from runs.tasks import execute_job

FIRE = "2026-03-02T10:01:00+00:00"
SECRET = "hunter2-secret"


@pytest.fixture
def run(db):
    job = job_services.job_create(data={"id": "sh", "interval_seconds": 60, "url": "http://127.0.0.1:9/"})
    return Run.objects.create(job=job, trigger="manual", status="running")


@pytest.fixture
def progress(run, monkeypatch):
    monkeypatch.setattr(RunProgress, "FLUSH_EVERY", 0)
    return RunProgress(run.pk, secrets=[SECRET])


def stored(run: Run) -> tuple[str, str]:
    run.refresh_from_db(fields=["output", "log_output"])
    return run.output, run.log_output


class Chunks(Progress):
    def __init__(self) -> None:
        super().__init__()
        self.chunks: list[bytes] = []

    def output(self, data: bytes) -> None:
        self.chunks.append(data)


def test_the_shell_executor_reports_each_chunk_of_output_as_it_comes():
    progress = Chunks()
    command = "sh -c 'echo one; sleep 0.3; echo two'"
    outcome = execute_shell(command=command, timeout=10, max_bytes=1024, progress=progress)
    assert outcome.output == "one\ntwo\n"
    assert progress.chunks == [b"one\n", b"two\n"]


@pytest.mark.django_db
def test_output_is_stored_at_each_flush(run, progress):
    progress.output(b"line 1\n")
    progress.tick()
    assert stored(run) == ("line 1\n", "")
    progress.output(b"line 2\n")
    progress.tick()
    assert stored(run) == ("line 1\nline 2\n", "")


@pytest.mark.django_db
def test_log_and_output_are_written_in_one_update(run, progress, monkeypatch):
    monkeypatch.setattr(RunProgress, "FLUSH_EVERY", 60)
    progress.flushed_at -= 120
    progress.output(b"out\n")
    with CaptureQueriesContext(connection) as queries:
        progress.log("logged")  # log() ticks
    updates = [q["sql"] for q in queries.captured_queries if q["sql"].startswith("UPDATE")]
    assert len(updates) == 1
    assert stored(run) == ("out\n", "logged")
    with CaptureQueriesContext(connection) as queries:
        progress.tick()  # nothing new
    assert not queries.captured_queries


@pytest.mark.django_db
def test_a_secret_split_across_chunks_is_masked_and_never_shown_in_part(run, progress):
    progress.output(b"password: hunt")
    progress.tick()
    assert stored(run)[0] == "password: "  # "hunt" may be the start of the secret: it waits
    progress.output(b"er2-sec")
    progress.tick()
    assert stored(run)[0] == "password: "
    progress.output(b"ret and hunter is fine\n")
    progress.tick()
    assert stored(run)[0] == f"password: {MASK} and hunter is fine\n"


@pytest.mark.django_db
def test_a_character_split_across_chunks_waits_for_its_last_byte(run, progress):
    data = "wörld\n".encode()
    progress.output(data[:2])  # "w" and the first byte of "ö"
    progress.tick()
    assert stored(run)[0] == "w"
    progress.output(data[2:])
    progress.tick()
    assert stored(run)[0] == "wörld\n"


@pytest.mark.django_db
def test_output_past_the_limit_is_not_kept_and_the_marker_waits_for_the_outcome(run, settings, monkeypatch):
    settings.CRONTASK_MAX_OUTPUT_BYTES = 1024
    monkeypatch.setattr(RunProgress, "FLUSH_EVERY", 0)
    progress = RunProgress(run.pk)
    progress.output(b"a" * 1000)
    progress.tick()
    progress.output(b"b" * 100)
    progress.tick()
    assert stored(run)[0] == "a" * 1000 + "b" * 24
    with CaptureQueriesContext(connection) as queries:
        progress.output(b"c" * 100)  # past the limit: nothing new to show
        progress.tick()
    assert not queries.captured_queries
    assert stored(run)[0] == "a" * 1000 + "b" * 24


@pytest.mark.django_db
def test_a_long_log_is_stored_without_the_marker_while_the_run_goes_on(run, settings, monkeypatch):
    settings.CRONTASK_MAX_OUTPUT_BYTES = 1024
    monkeypatch.setattr(RunProgress, "FLUSH_EVERY", 0)
    progress = RunProgress(run.pk)
    progress.log("x" * 1000)
    progress.log("y" * 100)  # dropped
    assert stored(run)[1] == "x" * 1000
    assert progress.text() == "x" * 1000 + "\n[… truncated: 101 more bytes not kept]"  # what the outcome stores


@pytest.mark.django_db(transaction=True)
def test_a_shell_runs_output_grows_while_it_runs_and_the_outcome_has_it_all(settings):
    settings.CRONTASK_ALLOW_SHELL = True
    command = f"sh -c 'for i in 1 2 3 4 5 6; do echo line $i; sleep 0.5; done; echo --password={SECRET}'"
    job_services.job_create(data={"id": "sh", "kind": "shell", "command": command, "interval_seconds": 60})

    def work() -> None:
        try:
            execute_job.apply(kwargs={"job_id": "sh", "scheduled_for": FIRE}, throw=True)
        finally:
            connection.close()  # this thread's own

    worker = threading.Thread(target=work)
    worker.start()
    seen: list[str] = []
    try:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            row = Run.objects.filter(job_id="sh").values("status", "output").first()
            if row is not None and row["status"] != "running" and row["output"]:
                break
            if row is not None and row["status"] == "running" and (not seen or row["output"] != seen[-1]):
                seen.append(row["output"])
            time.sleep(0.1)
    finally:
        worker.join()
    run = Run.objects.get(job_id="sh")
    assert run.status == "success"
    assert run.output == "".join(f"line {i}\n" for i in range(1, 7)) + "--password=" + MASK + "\n"
    grown = [text for text in seen if text]
    assert len(grown) >= 2, seen  # seen at least twice while it ran, each time longer
    assert "line 6" not in grown[0]
    for before, after in itertools.pairwise([*grown, run.output]):
        assert after.startswith(before)  # only ever grows
    assert SECRET not in "".join(seen)


@pytest.mark.django_db
def test_the_outcome_replaces_the_output_shown_so_far(run, monkeypatch):
    def execute(job, *, progress, **kwargs):
        progress.output(b"partial")
        progress.tick()
        return Outcome(status="success", output="the whole output\n")

    monkeypatch.setattr(RunProgress, "FLUSH_EVERY", 0)
    monkeypatch.setattr(execution.executors, "execute", execute)
    execute_job.apply(kwargs={"job_id": "sh", "scheduled_for": FIRE}, throw=True)
    assert Run.objects.get(job_id="sh", scheduled_for=FIRE).output == "the whole output\n"
