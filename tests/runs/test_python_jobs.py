"""Python jobs through the Celery task: the handler runs in a forked child of this process."""

from __future__ import annotations

import re
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
import time_machine
from django.db import connection

from jobs import services as job_services
from jobs.models import Job
from runs import enqueue
from runs.models import Run
from runs.tasks import execute_job

TEST_SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"
FIRE = "2026-03-02T10:01:00+00:00"


@pytest.fixture(autouse=True)
def test_scripts(settings):
    settings.CRONTASK_SCRIPTS_DIR = TEST_SCRIPTS


def python_job(handler: str, **extra) -> Job:
    return job_services.job_create(data={"id": "py", "kind": "python", "handler": handler, **extra})


def deliver() -> Run:
    execute_job.apply(kwargs={"job_id": "py", "scheduled_for": FIRE}, throw=True)
    return Run.objects.get(job_id="py", scheduled_for=FIRE)


@pytest.mark.django_db
def test_the_return_value_is_the_result_and_task_log_lines_are_kept():
    python_job("scripts:async_value", handler_kwargs={"value": 21})
    run = deliver()
    assert (run.status, run.result, run.target) == ("success", {"doubled": 42}, "scripts:async_value")
    assert re.fullmatch(r"\[\d\d:\d\d:\d\d\] async handler 21", run.log_output)
    assert Job.objects.get(pk="py").success_count == 1


@pytest.mark.django_db
def test_an_exception_is_a_failed_run_with_error_and_traceback():
    python_job("scripts:boom")
    run = deliver()
    assert run.status == "failed"
    assert run.error == "ValueError: the handler failed on purpose"
    assert "Traceback" in run.traceback
    assert "boom.py" in run.traceback


@pytest.mark.django_db
def test_a_handler_that_kills_its_process_is_a_failed_run():
    python_job("scripts:crash")
    run = deliver()
    assert run.status == "failed"
    assert "exited with code 3" in run.error


@pytest.mark.django_db
def test_expressions_are_evaluated_at_run_time():
    python_job(
        "scripts:echo_kwargs",
        handler_kwargs={"count": {"$expr": "len([1, 2, 3])"}, "when": {"$expr": "datetime(2026, 1, 2, 3, 4)"}},
    )
    run = deliver()
    assert run.status == "success", run.error
    assert run.result is not None
    assert run.result["count"] == 3
    assert run.result["when"].startswith("2026-01-02 03:04")


@pytest.mark.django_db
def test_a_manual_runs_kwargs_override_the_jobs_for_that_run_only(django_capture_on_commit_callbacks):
    job = python_job("scripts:echo_kwargs", handler_kwargs={"count": 1})
    with django_capture_on_commit_callbacks():
        run = enqueue.job_run_now(job=job, overrides={"handler_kwargs": {"count": 7}})
    execute_job.apply(kwargs={"job_id": "py", "run_id": run.pk}, throw=True)
    run.refresh_from_db()
    assert run.result is not None
    assert run.result["count"] == 7
    assert Job.objects.get(pk="py").handler_kwargs == {"count": 1}


@pytest.mark.django_db
def test_a_handler_past_its_timeout_is_killed_and_the_run_ends_timeout():
    python_job("scripts:sleepy", handler_kwargs={"seconds": 30}, timeout_seconds=1)
    started = time.monotonic()
    run = deliver()
    assert run.status == "timeout"
    assert time.monotonic() - started < 5
    assert "sleeping 30" in run.log_output


@pytest.mark.django_db(transaction=True)
def test_log_lines_reach_the_run_while_it_is_still_going():
    # A timeout well past the handler's 4.5 s, and a wait as long: on a loaded machine the child
    # process can take seconds to start (a run that timed out at the default 10 s failed this test).
    python_job("scripts:chatty", handler_kwargs={"lines": 3, "pause": 1.5}, timeout_seconds=60)

    def work() -> None:
        try:
            deliver()
        finally:
            connection.close()  # this thread's own: left open, it would block dropping the test database

    worker = threading.Thread(target=work)
    worker.start()
    try:
        seen = ""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            run = Run.objects.filter(job_id="py").first()
            if run is not None and run.status not in ("queued", "running"):
                break  # ended before a line was seen: the assertion below says so
            if run is not None and run.status == "running" and "line 2 of 3" in run.log_output:
                seen = run.log_output
                break
            time.sleep(0.2)
        assert "line 1 of 3" in seen, "no log line was visible before the run finished"
    finally:
        worker.join()
    run = Run.objects.get(job_id="py")
    assert run.status == "success"
    assert "printed to stdout" in run.log_output
    assert "logged with logging" in run.log_output
    assert "line 3 of 3" in run.log_output


@time_machine.travel(datetime(2026, 3, 2, 10, 1, 0, 300000, tzinfo=UTC), tick=True)
@pytest.mark.django_db(transaction=True)  # the handler's process reads what the test committed
def test_the_shipped_cleanup_script_deletes_old_runs(settings):
    settings.CRONTASK_SCRIPTS_DIR = Path(__file__).resolve().parents[2] / "scripts"
    job = python_job("scripts:cleanup_runs", handler_kwargs={"older_than_days": 30})
    old = Run.objects.create(job=job, trigger="manual", status="success", queued_at=datetime(2026, 1, 1, tzinfo=UTC))
    recent = Run.objects.create(job=job, trigger="manual", status="success", queued_at=datetime(2026, 3, 1, tzinfo=UTC))
    run = deliver()
    assert run.status == "success", run.error
    # versions_deleted: the versions of long-deleted jobs, pruned by the same cleanup (jobs.versions)
    assert run.result == {
        "deleted": 1, "older_than_days": 30, "keep_per_job": 0, "versions_deleted": 0, "tags_dropped": 0,
        "audit_deleted": 0,
    }  # fmt: skip
    assert not Run.objects.filter(pk=old.pk).exists()
    assert Run.objects.filter(pk=recent.pk).exists()


@pytest.mark.django_db
def test_a_result_larger_than_the_limit_is_kept_cut_with_a_marker():
    python_job("scripts:big_result", handler_kwargs={"size": 100_000})
    run = deliver()
    assert run.status == "success", run.error
    # The result's JSON text, cut at CRONTASK_MAX_OUTPUT_BYTES (65536) like any captured text.
    assert isinstance(run.result, str)
    assert run.result.startswith('{"data": "xxx')
    assert run.result.endswith("\n[… truncated: 34476 more bytes not kept]")  # 100012 - 65536
    assert len(run.result.encode()) < 65536 + 100


@pytest.mark.django_db
def test_a_large_result_that_grows_when_escaped_is_still_reported():
    python_job("scripts:big_result", handler_kwargs={"size": 100_000, "char": '"'})
    run = deliver()
    assert run.status == "success", run.error
    assert run.result is not None
    assert run.result.startswith('{"data": "\\"\\"')
    assert "truncated" in run.result


@pytest.mark.django_db
def test_a_result_within_the_limit_is_kept_whole():
    python_job("scripts:big_result", handler_kwargs={"size": 60_000})
    run = deliver()
    assert run.result == {"data": "x" * 60_000}


@pytest.mark.django_db
def test_a_huge_error_message_is_cut_with_a_marker():
    python_job("scripts:big_result", handler_kwargs={"size": 200_000, "fail": True})
    run = deliver()
    assert run.status == "failed"
    assert run.error.startswith("ValueError: xxx")
    assert "truncated" in run.error
    assert "big_result.py" in run.traceback


@pytest.mark.django_db
def test_nan_infinity_and_nul_in_a_result_are_stored_as_json_can_hold_them():
    # jsonb refuses NaN, Infinity and \u0000; text refuses NUL. Any of them used to leave the
    # run "running" on PostgreSQL.
    python_job("scripts:odd_values")
    run = deliver()
    assert run.status == "success", run.error
    assert run.result == {
        "nan": None,
        "inf": None,
        "minus_inf": None,
        "text": "g\ufffdh",
        "key\ufffd": [None, 1.5],
    }
    assert "logged a\ufffdb" in run.log_output
    assert "printed c\ufffdd" in run.log_output


@pytest.mark.django_db
def test_nul_in_an_error_is_stored():
    python_job("scripts:odd_values", handler_kwargs={"fail": True})
    run = deliver()
    assert (run.status, run.error) == ("failed", "ValueError: failed e\ufffdf")
    assert "\x00" not in run.traceback


def test_a_handlers_child_leaves_an_inherited_sqlite_connection_open(tmp_path, monkeypatch):
    # In the child, closing a connection to SQLite waited for ever on a lock another thread of the
    # worker held at the fork (a browser test's runs hung until their timeout, one in two): SQLite's
    # locks are not made for fork(). Its PostgreSQL connections are still closed, their socket first.
    import sqlite3
    from types import SimpleNamespace

    from runs.executors import python as python_executor

    raw = sqlite3.connect(tmp_path / "inherited.sqlite3")
    inherited = SimpleNamespace(
        vendor="sqlite", connection=raw, in_atomic_block=True, needs_rollback=True, savepoint_ids=["s1"],
        atomic_blocks=[object()], run_on_commit=[object()],
    )  # fmt: skip
    monkeypatch.setattr(python_executor, "_INHERITED_SQLITE", [], raising=False)
    monkeypatch.setattr(python_executor.connections, "all", lambda initialized_only=False: [inherited])
    python_executor._detach_inherited_connections()
    assert inherited.connection is None  # the handler opens a connection of its own if it needs one
    assert (inherited.in_atomic_block, inherited.atomic_blocks, inherited.run_on_commit) == (False, [], [])
    assert raw.execute("SELECT 1").fetchone() == (1,)  # not closed
    kept = python_executor._INHERITED_SQLITE
    assert kept == [raw]  # and never finalized in the child
    raw.close()


@pytest.mark.django_db
def test_the_objects_frozen_for_a_handlers_fork_are_unfrozen_in_the_worker():
    import gc

    python_job("scripts:async_value", handler_kwargs={"value": 1})
    assert deliver().status == "success"
    assert gc.get_freeze_count() == 0  # the worker still collects its garbage
