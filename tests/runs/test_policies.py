"""Retries, concurrency, misfires, lost runs and exact counters."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.db import connection
from django.utils import timezone

from jobs import services as job_services
from jobs.models import Job
from runs import reaper
from runs.accounting import job_record_run
from runs.models import Run
from runs.tasks import execute_job

FIRE = datetime(2026, 3, 2, 10, 1, tzinfo=UTC)


def deliver(job_id: str = "j", **kwargs) -> None:
    kwargs.setdefault("scheduled_for", FIRE.isoformat())
    execute_job.apply(kwargs={"job_id": job_id, **kwargs}, throw=True)


def make_job(url: str, **extra) -> Job:
    return job_services.job_create(data={"id": "j", "interval_seconds": 60, "url": url, **extra})


@pytest.mark.django_db
def test_failed_fires_are_retried_with_exponential_backoff_until_one_succeeds(
    http_target, queued_tasks, django_capture_on_commit_callbacks
):
    make_job(f"{http_target.url}/flaky/2", max_retries=3, retry_backoff_seconds=5)
    with django_capture_on_commit_callbacks(execute=True):
        deliver()
    first = Run.objects.get(attempt=1)
    assert first.status == "failed"
    retry = Run.objects.get(attempt=2)
    assert (retry.trigger, retry.status, retry.scheduled_for, retry.retry_of_id) == ("retry", "queued", FIRE, first.pk)
    assert queued_tasks == [{"job_id": "j", "run_id": retry.pk}]
    assert retry.queued_at is not None
    assert first.finished_at is not None
    assert retry.queued_at - first.finished_at >= timedelta(seconds=4.9)

    with django_capture_on_commit_callbacks(execute=True):
        deliver(run_id=retry.pk)
    third = Run.objects.get(attempt=3)
    assert third.retry_of_id == first.pk
    second_finished_at = Run.objects.get(attempt=2).finished_at
    assert third.queued_at is not None
    assert second_finished_at is not None
    assert third.queued_at - second_finished_at >= timedelta(seconds=9.9)  # 5 * 2

    with django_capture_on_commit_callbacks(execute=True):
        deliver(run_id=third.pk)
    assert [r.status for r in Run.objects.order_by("attempt")] == ["failed", "failed", "success"]
    assert not Run.objects.filter(attempt=4).exists()  # a success stops the chain
    job = Job.objects.get(pk="j")
    assert (job.run_count, job.success_count, job.failure_count) == (3, 1, 2)


@pytest.mark.django_db
def test_retries_stop_after_max_retries(http_target, queued_tasks, django_capture_on_commit_callbacks):
    make_job(f"{http_target.url}/status/500", max_retries=1, retry_backoff_seconds=1)
    with django_capture_on_commit_callbacks(execute=True):
        deliver()
    with django_capture_on_commit_callbacks(execute=True):
        deliver(run_id=Run.objects.get(attempt=2).pk)
    assert [r.status for r in Run.objects.order_by("attempt")] == ["failed", "failed"]
    assert len(queued_tasks) == 1


@pytest.mark.django_db
def test_forbid_skips_a_fire_while_a_run_is_going(http_target):
    job = make_job(f"{http_target.url}/", concurrency_policy="forbid")
    going = Run.objects.create(
        job=job,
        trigger="scheduled",
        scheduled_for=FIRE - timedelta(minutes=1),
        status="running",
        started_at=timezone.now(),
    )
    deliver()
    run = Run.objects.get(scheduled_for=FIRE)
    assert run.status == "skipped"
    assert f"run {going.pk} of this job was still running" in run.error
    assert http_target.hits["/"] == 0
    job.refresh_from_db()
    assert (job.run_count, job.last_run_status) == (0, "skipped")


@pytest.mark.django_db
def test_allow_runs_beside_a_run_that_is_going(http_target):
    job = make_job(f"{http_target.url}/")
    Run.objects.create(
        job=job,
        trigger="scheduled",
        scheduled_for=FIRE - timedelta(minutes=1),
        status="running",
        started_at=timezone.now(),
    )
    deliver()
    assert Run.objects.get(scheduled_for=FIRE).status == "success"


@pytest.mark.django_db
def test_a_fire_later_than_its_misfire_grace_is_skipped(http_target):
    make_job(f"{http_target.url}/", misfire_grace_seconds=30)
    with time_machine.travel(FIRE + timedelta(seconds=95), tick=False):
        deliver()
    run = Run.objects.get()
    assert run.status == "skipped"
    assert run.error == "Misfire: started 95.0 s after its scheduled time; the grace is 30 s."
    Run.objects.all().delete()
    with time_machine.travel(FIRE + timedelta(seconds=10), tick=False):
        deliver()
    assert Run.objects.get().status == "success"


@pytest.mark.django_db
def test_the_reaper_marks_runs_of_dead_workers_lost_and_retries_them(queued_tasks, settings):
    settings.CRONTASK_LOST_GRACE_SECONDS = 60
    job = make_job("http://127.0.0.1:9/", timeout_seconds=10, max_retries=1)
    now = timezone.now()
    dead = Run.objects.create(
        job=job, trigger="scheduled", scheduled_for=FIRE, status="running", started_at=now - timedelta(seconds=71)
    )
    alive = Run.objects.create(
        job=job,
        trigger="scheduled",
        scheduled_for=FIRE + timedelta(minutes=1),
        status="running",
        started_at=now - timedelta(seconds=30),
    )
    never = Run.objects.create(job=job, trigger="manual", status="queued", queued_at=now - timedelta(days=2))
    assert reaper.reap_lost_runs(now=now) == 2
    dead.refresh_from_db()
    assert dead.status == "lost"
    assert "stopped" in dead.error
    assert dead.duration_ms == 71000
    never.refresh_from_db()
    assert never.status == "lost"
    alive.refresh_from_db()
    assert alive.status == "running"
    retry = Run.objects.get(retry_of=dead)
    assert (retry.attempt, retry.status, retry.scheduled_for) == (2, "queued", FIRE)
    job.refresh_from_db()
    assert (job.failure_count, job.run_count) == (2, 2)
    assert reaper.reap_lost_runs(now=now) == 0


@pytest.mark.django_db(transaction=True)
def test_job_counters_stay_exact_under_concurrent_runs():
    make_job("http://127.0.0.1:9/")
    started = timezone.now()

    def record(status: str) -> None:
        try:
            for _ in range(25):
                job_record_run(job_id="j", status=status, started_at=started)
        finally:
            connection.close()

    threads = [threading.Thread(target=record, args=(s,)) for s in ["success", "failed"] * 3]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    job = Job.objects.get(pk="j")
    assert (job.run_count, job.success_count, job.failure_count) == (150, 75, 75)


@pytest.mark.django_db(transaction=True)
def test_runs_of_one_job_ended_at_once_are_each_counted_once():
    """``runs.outcomes.finish`` from several connections at once: each run ends once and is counted
    once (on PostgreSQL the ending and the counting are one statement), whichever order the job's
    row is locked in, and a run ended twice is counted once."""
    from runs import outcomes
    from runs.executors.base import Outcome

    job = make_job("http://127.0.0.1:9/", max_retries=0)
    now = timezone.now()
    runs = Run.objects.bulk_create(
        Run(job=job, status=Run.Status.RUNNING, started_at=now, queued_at=now, scheduled_for=now + timedelta(seconds=n))
        for n in range(60)
    )

    def end(share: list[Run]) -> None:
        try:
            for run in share:
                status = "success" if run.pk % 2 else "failed"
                outcomes.finish(run, Outcome(status=status, status_code=200), job=job)
                outcomes.finish(run, Outcome(status=status, status_code=200), job=job)  # ended already: no count
        finally:
            connection.close()

    threads = [threading.Thread(target=end, args=(runs[n::4],)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    job.refresh_from_db()
    successes = sum(1 for run in runs if run.pk % 2)
    assert (job.run_count, job.success_count, job.failure_count) == (60, successes, 60 - successes)
    assert Run.objects.filter(status=Run.Status.RUNNING).count() == 0


@pytest.mark.django_db
def test_last_run_moves_only_forward_and_skipped_runs_are_not_counted():
    make_job("http://127.0.0.1:9/")
    earlier, later = timezone.now() - timedelta(minutes=5), timezone.now()
    job_record_run(job_id="j", status="success", started_at=later)
    # A run that started earlier but ended later (a slow one) does not become the last run.
    job_record_run(job_id="j", status="failed", started_at=earlier)
    job = Job.objects.get(pk="j")
    assert (job.last_run_at, job.last_run_status) == (later, "success")
    assert (job.run_count, job.success_count, job.failure_count) == (2, 1, 1)

    skipped_at = later + timedelta(seconds=1)
    job_record_run(job_id="j", status="skipped", started_at=skipped_at, counted=False)
    job.refresh_from_db()
    assert (job.last_run_at, job.last_run_status) == (skipped_at, "skipped")
    assert (job.run_count, job.success_count, job.failure_count) == (2, 1, 1)
