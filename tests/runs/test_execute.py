"""Executing a fire against a real local HTTP server, through the Celery task."""

from __future__ import annotations

import logging
import time

import pytest
from django.test import override_settings

from jobs import services as job_services
from jobs.models import Job
from runs import enqueue
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
    assert run.scheduled_for is not None
    assert run.scheduled_for.isoformat() == FIRE
    assert run.target == f"POST {http_target.url}/hello"
    assert run.duration_ms is not None
    assert run.finished_at is not None
    assert run.started_at is not None
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
    assert run.duration_ms is not None
    assert run.duration_ms < 2500


def test_a_body_trickled_a_byte_at_a_time_times_out_at_the_limit(http_target):
    # 20 bytes, one every 0.5 s: each read is quick, the whole body would take 10 s.
    make_job(f"{http_target.url}/drip/20", timeout_seconds=1)
    started = time.monotonic()
    deliver()
    assert time.monotonic() - started < 2.5
    run = Run.objects.get()
    assert (run.status, run.status_code) == ("timeout", 200)
    assert run.duration_ms is not None
    assert run.duration_ms < 2500
    assert "still arriving after 1 s" in run.error
    assert set(run.response_body) <= {"d"}  # what came in time is kept


def test_headers_trickled_a_byte_at_a_time_time_out_at_the_limit(http_target):
    make_job(f"{http_target.url}/drip-headers/20", timeout_seconds=1)
    started = time.monotonic()
    deliver()
    assert time.monotonic() - started < 2.5
    run = Run.objects.get()
    assert (run.status, run.status_code) == ("timeout", None)
    assert run.error == "No complete answer within 1 s."


@override_settings(CRONTASK_MAX_OUTPUT_BYTES=1024)
def test_a_large_response_is_cut_at_the_limit_with_a_marker(http_target):
    make_job(f"{http_target.url}/big/5000")
    deliver()
    body = Run.objects.get().response_body
    assert body.startswith("x" * 1024)
    assert "x" * 1025 not in body
    assert "truncated" in body


def test_a_compressed_answer_is_stored_decompressed(http_target):
    make_job(f"{http_target.url}/gzip")
    deliver()
    assert Run.objects.get().response_body == "unzipped " * 100


def test_run_now_queues_a_manual_run_after_commit_with_its_overrides(http_target, django_capture_on_commit_callbacks):
    job = make_job(f"{http_target.url}/echo", method="POST", body="from the job")
    with django_capture_on_commit_callbacks() as callbacks:
        run = enqueue.job_run_now(job=job, overrides={"body": "one-off"})
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
    assert job.periodic_task is not None
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


def test_a_nul_byte_in_the_response_is_stored_as_a_replacement_character(http_target):
    # PostgreSQL text refuses NUL: stored as it came, the run would stay "running".
    make_job(f"{http_target.url}/nul")
    deliver()
    run = Run.objects.get()
    assert (run.status, run.response_body) == ("success", "a\ufffdb")


SECRET = "s3cr3t-token-0123456789"


def test_a_header_value_requests_refuses_is_reported_by_name_without_its_value(http_target, caplog):
    caplog.set_level(logging.DEBUG)
    job = make_job(f"{http_target.url}/", headers={"Authorization": f"Bearer {SECRET}"})
    # A line break in the value: refused by validation on save, so written behind its back.
    Job.objects.filter(pk=job.pk).update(headers={"Authorization": f"Bearer {SECRET}\n"})
    deliver()
    run = Run.objects.get()
    assert run.status == "failed"
    assert "InvalidHeader" in run.error
    assert "'Authorization'" in run.error
    assert SECRET not in run.error + run.traceback
    assert SECRET not in caplog.text
    assert http_target.hits["/"] == 0


def test_a_header_with_leading_whitespace_is_reported_by_name_whatever_its_name(http_target):
    job = make_job(f"{http_target.url}/")
    Job.objects.filter(pk=job.pk).update(headers={"X-Custom": f" {SECRET}"})
    deliver()
    run = Run.objects.get()
    assert run.status == "failed"
    assert "'X-Custom'" in run.error
    assert SECRET not in run.error


@pytest.mark.parametrize("path", ["/", "/status/401", "/slow/3"])
def test_a_run_with_an_authorization_header_logs_no_secret(http_target, caplog, path):
    caplog.set_level(logging.DEBUG)
    make_job(f"{http_target.url}{path}", headers={"Authorization": f"Token {SECRET}"}, timeout_seconds=1)
    deliver()
    run = Run.objects.get()
    assert http_target.requests[0][2]["Authorization"] == f"Token {SECRET}"  # it was sent
    assert run.status in ("success", "failed", "timeout")
    assert caplog.records
    for record in caplog.records:
        assert SECRET not in record.getMessage()
        assert SECRET not in repr(vars(record))  # extra fields too
    assert SECRET not in run.error + run.traceback + run.target


def test_an_executor_crash_quoting_a_header_value_is_masked_in_the_run_and_the_log(monkeypatch, caplog):
    from runs import execution

    def crash(job, **kwargs):
        raise ValueError(f"cannot send {job.headers['Authorization']!r}")

    monkeypatch.setattr(execution.executors, "execute", crash)
    make_job("http://127.0.0.1:9/", headers={"Authorization": f"Bearer {SECRET}"})
    deliver()
    run = Run.objects.get()
    assert run.status == "failed"
    assert run.error == "ValueError: cannot send '********'"
    assert "Traceback" in run.traceback
    assert SECRET not in run.traceback
    assert "executor crashed" in caplog.text
    assert SECRET not in caplog.text


def test_the_proxy_environment_is_read_again_when_it_changes(monkeypatch):
    """The environment's settings for a call are remembered by host and by the variables they
    come from: a proxy set, or a host exempted, is seen by the next call."""
    import requests

    from runs.executors.http import _environment_settings

    for name in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY", "no_proxy", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
    session = requests.Session()
    assert _environment_settings(session, "http://example.test/a")["proxies"] == {}
    monkeypatch.setenv("http_proxy", "http://proxy.test:3128")
    assert _environment_settings(session, "http://example.test/b")["proxies"] == {"http": "http://proxy.test:3128"}
    monkeypatch.setenv("no_proxy", "example.test")
    assert _environment_settings(session, "http://example.test/c")["proxies"] == {}
    assert _environment_settings(session, "http://other.test/")["proxies"]["http"] == "http://proxy.test:3128"


def test_calls_share_one_thread_for_their_deadlines(http_target, monkeypatch):
    """A call's deadline is kept by the process's deadline thread, not a timer thread of its own
    (a thread per call in a batch of 20), and it still ends a call that runs past it."""
    import threading

    def no_timer(*args, **kwargs):
        raise AssertionError("a threading.Timer per call")

    monkeypatch.setattr(threading, "Timer", no_timer)
    make_job(f"{http_target.url}/slow/3", timeout_seconds=1)
    deliver()
    run = Run.objects.get()
    assert run.status == "timeout"
    assert run.duration_ms is not None
    assert run.duration_ms < 2500
    deadline_threads = [t for t in threading.enumerate() if t.name == "crontask-call-deadlines"]
    assert len(deadline_threads) == 1


def test_cleared_deadlines_do_not_pile_up_until_their_time():
    # Calls with an hour's timeout that end at once: their deadlines leave the heap, and what
    # their watchdogs hold is let go, long before the hour is up.
    from runs.executors.http import _Alarms

    alarms = _Alarms()
    fired: list[int] = []
    for number in range(1_000):
        callback = lambda number=number: fired.append(number)  # noqa: E731
        alarm = alarms.set(3600, callback)
        alarms.clear(alarm)
        assert alarm.cleared
        assert alarm.callback is not callback
    assert len(alarms._heap) <= 130
    kept = alarms.set(0.05, lambda: fired.append(-1))
    deadline = time.monotonic() + 5
    while not fired and time.monotonic() < deadline:
        time.sleep(0.01)
    assert fired == [-1]
    assert not kept.cleared
