"""Executing a fire against a real local HTTP server, through the Celery task."""

from __future__ import annotations

import pytest
from django.test import override_settings

from jobs import services as job_services
from jobs.models import Job
from runs.models import Run
from runs.tasks import execute_job

pytestmark = pytest.mark.django_db

FIRE = "2026-03-02T10:01:00+00:00"


def make_job(url: str, **extra) -> Job:
    return job_services.job_create(data={"id": "t", "interval_seconds": 60, "url": url, **extra})


def deliver(**kwargs) -> None:
    execute_job.apply(kwargs={"job_id": "t", "scheduled_for": FIRE, **kwargs}, throw=True)


def test_a_fire_records_a_successful_run_and_the_jobs_counters(http_target):
    make_job(f"{http_target.url}/hello", method="POST", headers={"X-Token": "abc"}, body="payload")
    deliver()
    run = Run.objects.get()
    assert (run.status, run.status_code, run.response_body) == ("success", 200, "pong")
    assert run.trigger == "scheduled"
    assert run.scheduled_for.isoformat() == FIRE
    assert run.target == f"POST {http_target.url}/hello"
    assert run.duration_ms is not None
    assert run.finished_at >= run.started_at
    method, path, headers, body = http_target.requests[0]
    assert (method, path, headers["X-Token"], body) == ("POST", "/hello", "abc", b"payload")
    job = Job.objects.get(pk="t")
    assert (job.run_count, job.success_count, job.failure_count, job.last_run_status) == (1, 1, 0, "success")
    assert job.last_run_at == run.started_at


def test_the_same_message_delivered_twice_makes_one_run(http_target):
    make_job(f"{http_target.url}/once")
    deliver()
    deliver()
    assert Run.objects.count() == 1
    assert http_target.hits["/once"] == 1
    assert Job.objects.get(pk="t").run_count == 1


def test_an_error_status_is_a_failed_run(http_target):
    make_job(f"{http_target.url}/status/503")
    deliver()
    run = Run.objects.get()
    assert (run.status, run.status_code) == ("failed", 503)
    assert "503" in run.error
    job = Job.objects.get(pk="t")
    assert (job.failure_count, job.last_run_status) == (1, "failed")


def test_a_refused_connection_is_a_failed_run_with_the_reason():
    make_job("http://127.0.0.1:9/")  # discard port: nothing listens
    deliver()
    run = Run.objects.get()
    assert run.status == "failed"
    assert run.status_code is None
    assert "ConnectionError" in run.error


def test_a_slow_answer_times_out(http_target):
    make_job(f"{http_target.url}/slow/3", timeout_seconds=1)
    deliver()
    run = Run.objects.get()
    assert run.status == "timeout"
    assert run.duration_ms < 2500


@override_settings(CRONTASK_MAX_OUTPUT_BYTES=1024)
def test_a_large_response_is_cut_at_the_limit_with_a_marker(http_target):
    make_job(f"{http_target.url}/big/5000")
    deliver()
    body = Run.objects.get().response_body
    assert body.startswith("x" * 1024)
    assert "x" * 1025 not in body
    assert "truncated" in body


def test_run_now_queues_a_manual_run_after_commit_with_its_overrides(http_target, django_capture_on_commit_callbacks):
    job = make_job(f"{http_target.url}/echo", method="POST", body="from the job")
    with django_capture_on_commit_callbacks() as callbacks:
        run = job_services.job_run_now(job=job, overrides={"body": "one-off"})
        assert run.status == "queued"
    assert len(callbacks) == 1  # queued only once the transaction commits
    execute_job.apply(kwargs={"job_id": "t", "run_id": run.pk}, throw=True)
    execute_job.apply(kwargs={"job_id": "t", "run_id": run.pk}, throw=True)  # a redelivery
    run.refresh_from_db()
    assert (run.trigger, run.status, run.response_body) == ("manual", "success", "one-off")
    assert http_target.hits["/echo"] == 1
    job.refresh_from_db()
    assert job.body == "from the job"


def test_a_date_job_is_completed_by_its_run(http_target):
    job = job_services.job_create(data={"id": "t", "run_at": "2099-01-01T00:00:00Z", "url": f"{http_target.url}/"})
    Job.objects.filter(pk=job.pk).update(next_run_at=None)  # as the scheduler leaves it after claiming the fire
    deliver()
    job.refresh_from_db()
    assert job.status == "completed"
    assert not job.periodic_task.enabled


def test_a_fire_of_a_paused_job_is_skipped(http_target):
    job = make_job(f"{http_target.url}/")
    job_services.job_pause(job=job)
    deliver()
    run = Run.objects.get()
    assert run.status == "skipped"
    assert "paused" in run.error
    assert http_target.hits["/"] == 0


def test_a_message_for_a_deleted_job_is_dropped():
    execute_job.apply(kwargs={"job_id": "nope", "scheduled_for": FIRE}, throw=True)
    assert not Run.objects.exists()
