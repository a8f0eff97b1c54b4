"""Fires that beat sends ahead of their time (CRONTASK_FIRE_LEAD_MS): claimed early, started on time."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from django.utils import timezone

from jobs import services as job_services
from jobs.models import Job
from runs import services as run_services
from runs.models import Run
from runs.tasks import execute_fires, execute_job

pytestmark = pytest.mark.django_db


def make_job(job_id: str, url: str, **extra) -> Job:
    return job_services.job_create(data={"id": job_id, "interval_seconds": 60, "url": url, **extra})


def soon(seconds: float) -> datetime:
    return timezone.now() + timedelta(seconds=seconds)


def test_a_batch_sent_ahead_is_claimed_at_once_queued_and_called_at_its_time(http_target, settings, monkeypatch):
    settings.CRONTASK_FIRE_LEAD_MS = 1000
    for job_id in ("a", "b", "c"):
        make_job(job_id, f"{http_target.url}/{job_id}")
    fire = soon(0.6)
    seen = []
    start_queued = run_services._start_queued

    def look_then_start(runs):  # what the runs were between the claim and the fire's time
        seen.append((timezone.now(), sorted(Run.objects.values_list("job_id", "status", "started_at"))))
        start_queued(runs)

    monkeypatch.setattr(run_services, "_start_queued", look_then_start)
    execute_fires.apply(kwargs={"fires": [[job_id, fire.isoformat()] for job_id in ("a", "b", "c")]}, throw=True)

    [(looked_at, before)] = seen
    assert looked_at < fire
    assert before == [(job_id, "queued", None) for job_id in ("a", "b", "c")]
    runs = list(Run.objects.order_by("job_id"))
    assert [(r.job_id, r.scheduled_for, r.status) for r in runs] == [(j, fire, "success") for j in ("a", "b", "c")]
    assert all(r.started_at >= fire for r in runs)
    # and the target saw no call before the fire's time
    assert sorted(path for _, path in http_target.arrivals) == ["/a", "/b", "/c"]
    assert min(at for at, _ in http_target.arrivals) >= fire.timestamp()
    for job in Job.objects.all():
        assert (job.run_count, job.success_count) == (1, 1)


def test_a_lone_fire_sent_ahead_is_run_at_its_time(http_target, settings):
    settings.CRONTASK_FIRE_LEAD_MS = 1000
    make_job("one", f"{http_target.url}/one")
    fire = soon(0.5)
    execute_job.apply(kwargs={"job_id": "one", "scheduled_for": fire.isoformat()}, throw=True)
    run = Run.objects.get()
    assert (run.status, run.scheduled_for) == ("success", fire)
    assert run.started_at >= fire
    [(arrived, _path)] = http_target.arrivals
    assert arrived >= fire.timestamp()


def test_a_worker_holds_an_early_fire_no_longer_than_the_lead_and_a_second(settings, monkeypatch):
    """A worker whose clock is behind beat's (or a forged message) cannot be held for long."""
    settings.CRONTASK_FIRE_LEAD_MS = 250
    slept = []
    monkeypatch.setattr(run_services.time, "sleep", slept.append)
    run_services._hold_until(soon(3600))
    run_services._hold_until(soon(-1))
    run_services._hold_until(None)
    assert slept == [1.25]


def test_a_fire_claimed_ahead_whose_worker_died_is_reaped_lost_and_retried(http_target, settings):
    job = make_job("held", f"{http_target.url}/held", max_retries=1, retry_backoff_seconds=5)
    fire = soon(0.5).replace(microsecond=0) + timedelta(seconds=1)
    [run] = run_services._claim_fires(
        [(job, fire)], now=fire - timedelta(milliseconds=200), worker="w", celery_task_id="t"
    )
    assert (run.status, run.started_at) == ("queued", None)
    # the message comes again (the worker died holding it): the fire is claimed, nothing runs twice
    execute_fires.apply(kwargs={"fires": [["held", fire.isoformat()]]}, throw=True)
    assert Run.objects.get().status == "queued"

    grace = timedelta(seconds=settings.CRONTASK_LOST_GRACE_SECONDS)
    assert run_services.reap_lost_runs(now=fire + grace - timedelta(seconds=1)) == 0
    assert run_services.reap_lost_runs(now=fire + grace + timedelta(seconds=1)) == 1
    run.refresh_from_db()
    assert (run.status, run.error) == ("lost", run_services._LOST_HELD)
    assert list(Run.objects.filter(attempt=2).values_list("status", "trigger")) == [("queued", "retry")]
    assert http_target.hits == {}


def test_a_forbid_job_claimed_ahead_counts_as_going(http_target, settings):
    settings.CRONTASK_FIRE_LEAD_MS = 1000
    job = make_job("solo", f"{http_target.url}/solo", concurrency_policy="forbid")
    fire = soon(0.5)
    [held] = run_services._claim_fires([(job, fire)], now=timezone.now(), worker="w", celery_task_id="t")
    assert held.status == "queued"
    later = fire + timedelta(seconds=1)
    [run] = run_services._claim_fires([(job, later)], now=timezone.now(), worker="w", celery_task_id="t")
    assert (run.status, run.error) == (
        "skipped",
        f"Concurrency policy 'forbid': run {held.pk} of this job was still running.",
    )
