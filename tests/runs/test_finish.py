"""How a run ends: only a run still running takes its outcome, and every outcome can be stored."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from django.utils import timezone

from jobs import services as job_services
from jobs.models import Job
from runs import execution, reaper
from runs.executors.base import Outcome
from runs.models import Run
from runs.tasks import execute_job

pytestmark = pytest.mark.django_db
FIRE = "2026-03-02T10:01:00+00:00"


def make_job(**extra) -> Job:
    return job_services.job_create(data={"id": "j", "interval_seconds": 60, "url": "http://127.0.0.1:9/", **extra})


def deliver() -> Run:
    execute_job.apply(kwargs={"job_id": "j", "scheduled_for": FIRE}, throw=True)
    return Run.objects.get(job_id="j", attempt=1)


def executor_returning(monkeypatch, outcome: Outcome, before=None) -> None:
    def execute(job, **kwargs):
        if before is not None:
            before()
        return outcome

    monkeypatch.setattr(execution.executors, "execute", execute)


def test_a_run_the_reaper_marked_lost_stays_lost_when_its_outcome_comes_late(
    monkeypatch, queued_tasks, django_capture_on_commit_callbacks, caplog
):
    make_job(max_retries=1)

    def reaper_runs_meanwhile():  # the run seemed to have lost its worker
        assert reaper.reap_lost_runs(now=timezone.now() + timedelta(hours=1)) == 1

    executor_returning(
        monkeypatch, Outcome(status="success", status_code=200, response_body="late"), reaper_runs_meanwhile
    )
    with django_capture_on_commit_callbacks(execute=True):
        run = deliver()
    # The reaper's "lost" stands: it was counted and retried already; the outcome is a note.
    assert (run.status, run.status_code, run.response_body) == ("lost", None, "")
    assert run.error.startswith("The worker running it stopped")
    assert "It did end later (success, after " in run.error
    job = Job.objects.get(pk="j")
    assert (job.run_count, job.success_count, job.failure_count, job.last_run_status) == (1, 0, 1, "lost")
    retry = Run.objects.get(attempt=2)
    assert queued_tasks == [{"job_id": "j", "run_id": retry.pk}]  # one retry, the reaper's
    assert f"late outcome ignored run_id={run.pk}" in caplog.text


def test_an_outcome_the_database_refuses_is_recorded_as_failed_with_the_reason(monkeypatch, caplog):
    caplog.set_level(logging.INFO)
    make_job()
    # A negative status code breaks a CHECK constraint on every database.
    executor_returning(monkeypatch, Outcome(status="success", status_code=-1, response_body="body"))
    run = deliver()
    assert run.status == "failed"
    assert run.error.startswith("The run ended success, but its outcome could not be stored (IntegrityError: ")
    assert run.finished_at is not None
    assert (run.status_code, run.response_body) == (None, "")
    job = Job.objects.get(pk="j")
    assert (job.run_count, job.failure_count, job.last_run_status) == (1, 1, "failed")
    assert "could not store the outcome" in caplog.text


def test_nul_nan_and_infinity_from_any_executor_are_stored(monkeypatch):
    # What PostgreSQL refuses (NUL in text and jsonb; NaN and Infinity in jsonb) is made storable.
    make_job()
    outcome = Outcome(
        status="failed",
        response_body="r\x00",
        output="o\x00",
        error="e\x00",
        traceback="t\x00",
        result={"k\x00": [float("nan"), float("inf"), "v\x00", 1]},
    )
    executor_returning(monkeypatch, outcome)
    run = deliver()
    assert run.status == "failed"
    assert (run.response_body, run.output, run.error, run.traceback) == ("r\ufffd", "o\ufffd", "e\ufffd", "t\ufffd")
    assert run.result == {"k\ufffd": [None, None, "v\ufffd", 1]}


def test_a_log_line_with_nul_is_stored(monkeypatch):
    make_job()

    def execute(job, *, overrides, progress, **kwargs):
        progress.log("a\x00b")
        return Outcome(status="success")

    monkeypatch.setattr(execution.executors, "execute", execute)
    assert deliver().log_output == "a\ufffdb"


@pytest.mark.timeout(60)  # a naive secret pattern backtracks for hours on these
def test_a_long_error_is_masked_in_bounded_time(monkeypatch):
    make_job()
    error = "token=abc " + "x" * 30000 + "=1 " + "token" * 6000 + " password=p"
    executor_returning(monkeypatch, Outcome(status="failed", error=error))
    run = deliver()
    assert run.error.startswith("token=******** xxx")
    assert run.error.endswith(" password=********")
