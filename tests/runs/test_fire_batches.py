"""HTTP fires that beat sends together (``execute_fires``): one claim, the calls at once, the same rules."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from core.per_process import PerProcess
from jobs import services as job_services
from jobs.models import Job
from runs.models import Run
from runs.tasks import execute_fires, execute_job

pytestmark = pytest.mark.django_db

FIRE = datetime(2026, 3, 2, 10, 1, tzinfo=UTC)


def make_job(job_id: str, url: str, **extra) -> Job:
    return job_services.job_create(data={"id": job_id, "interval_seconds": 60, "url": url, **extra})


def deliver(*job_ids: str, at: datetime = FIRE) -> None:
    execute_fires.apply(kwargs={"fires": [[job_id, at.isoformat()] for job_id in job_ids]}, throw=True)


def test_a_batch_makes_one_run_per_fire_with_the_calls_made_at_once(http_target):
    ids = [f"slow{i}" for i in range(4)]
    for job_id in ids:
        make_job(job_id, f"{http_target.url}/slow/1")
    deliver(*ids)
    runs = list(Run.objects.order_by("job_id"))
    assert [(r.job_id, r.scheduled_for, r.attempt, r.trigger, r.status) for r in runs] == [
        (job_id, FIRE, 1, "scheduled", "success") for job_id in ids
    ]
    assert http_target.hits == {"/slow/1": 4}
    # Each call took a second and all of them were going at the same moment.
    assert all(r.duration_ms is not None and r.duration_ms >= 1000 for r in runs)
    started = [r.started_at for r in runs if r.started_at is not None]
    finished = [r.finished_at for r in runs if r.finished_at is not None]
    assert len(started) == len(finished) == len(runs)
    assert max(started) < min(finished)
    for job in Job.objects.all():
        assert (job.run_count, job.success_count, job.last_run_status) == (1, 1, "success")


def test_later_batches_make_their_calls_in_the_threads_of_earlier_ones(http_target, monkeypatch):
    """The process keeps its call threads between batches (``runs.execution.call_threads``), and
    a batch's calls are still all going at once, each in a thread of its own."""
    import threading

    from runs import execution

    threads: list[list[int]] = [[], []]
    original = execution._call_and_time

    def recorded(*args, **kwargs):
        threads[batch].append(threading.get_ident())
        return original(*args, **kwargs)

    monkeypatch.setattr(execution, "_call_and_time", recorded)
    own = PerProcess(lambda: ThreadPoolExecutor(max_workers=8, thread_name_prefix="crontask-call"))
    monkeypatch.setattr(execution, "_call_threads", own)  # this test's own, whatever ran before
    ids = [f"slow{i}" for i in range(4)]
    for job_id in ids:
        make_job(job_id, f"{http_target.url}/slow/0.5")
    for batch in (0, 1):
        deliver(*ids, at=FIRE + timedelta(minutes=batch))
        idle = execution.call_threads()._idle_semaphore  # the executor's own count of idle threads
        deadline = time.monotonic() + 5
        while idle._value < 4 and time.monotonic() < deadline:  # a thread counts itself idle just after its call
            time.sleep(0.01)
    assert len(set(threads[0])) == len(set(threads[1])) == 4  # a thread a call
    assert set(threads[1]) == set(threads[0])  # the same four
    assert execution.call_threads() is execution.call_threads()
    own.get().shutdown()
    runs = list(Run.objects.filter(scheduled_for=FIRE + timedelta(minutes=1)))
    assert [r.status for r in runs] == ["success"] * 4
    started = [r.started_at for r in runs if r.started_at is not None]
    finished = [r.finished_at for r in runs if r.finished_at is not None]
    assert len(started) == len(finished) == 4
    assert max(started) < min(finished)


def test_a_batch_delivered_twice_runs_each_fire_once(http_target, caplog):
    for job_id in ("a", "b", "c"):
        make_job(job_id, f"{http_target.url}/{job_id}")
    deliver("a", "b", "c")
    deliver("a", "b", "c")
    assert Run.objects.count() == 3
    assert sum(http_target.hits.values()) == 3
    assert caplog.text.count("duplicate delivery") == 3


def test_a_fire_of_the_batch_claimed_already_does_not_stop_the_others(http_target):
    for job_id in ("a", "b", "c"):
        make_job(job_id, f"{http_target.url}/{job_id}")
    execute_job.apply(kwargs={"job_id": "b", "scheduled_for": FIRE.isoformat()}, throw=True)
    deliver("a", "b", "c")
    assert sorted(Run.objects.values_list("job_id", "status")) == [("a", "success"), ("b", "success"), ("c", "success")]
    assert http_target.hits == {"/a": 1, "/b": 1, "/c": 1}


def test_each_fire_of_a_batch_keeps_its_jobs_policies(http_target):
    url = f"{http_target.url}/ok"
    going = {}
    for job_id in ("busy", "busy2"):
        make_job(job_id, url, concurrency_policy="forbid")
        going[job_id] = Run.objects.create(
            job_id=job_id, trigger="manual", status="running", started_at=timezone.now(), queued_at=timezone.now()
        )
    make_job("free", url, concurrency_policy="forbid")
    make_job("paused", url)
    job_services.job_pause(job=Job.objects.get(pk="paused"))
    make_job("late", url, misfire_grace_seconds=5)
    make_job("fine", url)
    deliver("busy", "paused", "late", "gone", "busy2", "free", "fine")

    runs = {r.job_id: r for r in Run.objects.filter(scheduled_for=FIRE)}
    assert sorted(runs) == ["busy", "busy2", "fine", "free", "late", "paused"]  # the deleted job's fire is dropped
    for job_id in ("busy", "busy2"):
        assert (runs[job_id].status, runs[job_id].error) == (
            "skipped",
            f"Concurrency policy 'forbid': run {going[job_id].pk} of this job was still running.",
        )
    assert runs["free"].status == "success"
    assert (runs["paused"].status, runs["paused"].error) == ("skipped", "The job was paused before this fire started.")
    assert runs["late"].status == "skipped"
    assert runs["late"].error.startswith("Misfire: started")
    assert runs["fine"].status == "success"
    assert http_target.hits == {"/ok": 2}
    assert Job.objects.get(pk="busy").run_count == 0  # a skipped fire is not counted as a run


def test_a_forbid_job_given_two_fires_in_one_batch_runs_only_one(http_target):
    make_job("once", f"{http_target.url}/slow/1", concurrency_policy="forbid")
    execute_fires.apply(
        kwargs={"fires": [["once", FIRE.isoformat()], ["once", (FIRE + timedelta(seconds=1)).isoformat()]]},
        throw=True,
    )
    assert sorted(Run.objects.values_list("scheduled_for", "status")) == [
        (FIRE, "success"),
        (FIRE + timedelta(seconds=1), "skipped"),
    ]
    assert http_target.hits == {"/slow/1": 1}


def test_a_fire_whose_job_is_no_longer_an_http_job_runs_on_its_own(http_target, settings):
    settings.CRONTASK_SCRIPTS_DIR = Path(__file__).resolve().parents[1] / "scripts"
    make_job("call", f"{http_target.url}/call")
    job_services.job_create(
        data={"id": "py", "interval_seconds": 60, "kind": "python", "handler": "scripts:async_value"}
    )
    deliver("call", "py")
    runs = {r.job_id: r for r in Run.objects.all()}
    assert (runs["call"].status, runs["call"].status_code) == ("success", 200)
    assert (runs["py"].status, runs["py"].result) == ("success", {"doubled": 2})


def test_a_failed_call_in_a_batch_is_retried_like_any_other(
    http_target, queued_tasks, django_capture_on_commit_callbacks
):
    make_job("bad", f"{http_target.url}/status/500", max_retries=1, retry_backoff_seconds=5)
    make_job("good", f"{http_target.url}/ok")
    with django_capture_on_commit_callbacks(execute=True):
        deliver("bad", "good")
    assert sorted(Run.objects.values_list("job_id", "attempt", "status")) == [
        ("bad", 1, "failed"),
        ("bad", 2, "queued"),
        ("good", 1, "success"),
    ]
    assert Run.objects.get(job_id="bad", attempt=1).error == "HTTP 500 Internal Server Error"
    assert queued_tasks == [{"job_id": "bad", "run_id": Run.objects.get(job_id="bad", attempt=2).pk}]


def test_an_outcome_that_cannot_be_stored_does_not_stop_the_rest_of_the_batch(http_target, settings, monkeypatch):
    from runs import execution

    settings.CRONTASK_SCRIPTS_DIR = Path(__file__).resolve().parents[1] / "scripts"
    make_job("a", f"{http_target.url}/a")
    make_job("b", f"{http_target.url}/b")
    job_services.job_create(
        data={"id": "py", "interval_seconds": 60, "kind": "python", "handler": "scripts:async_value"}
    )
    finish = execution.finish

    def finish_but_not_a(run, outcome, **kwargs):
        if run.job_id == "a":
            raise RuntimeError("the database went away")
        return finish(run, outcome, **kwargs)

    monkeypatch.setattr(execution, "finish", finish_but_not_a)
    with pytest.raises(RuntimeError, match="went away"):
        deliver("a", "b", "py")  # the task fails, so the failure shows, but only after the others
    assert sorted(Run.objects.values_list("job_id", "status")) == [
        ("a", "running"),
        ("b", "success"),
        ("py", "success"),
    ]
    assert http_target.hits == {"/a": 1, "/b": 1}
