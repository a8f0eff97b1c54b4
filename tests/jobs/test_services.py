from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
import time_machine
from django.core.exceptions import ValidationError
from django_celery_beat.models import PeriodicTask

from jobs import services
from jobs.errors import JobAlreadyExists, JobProtected
from jobs.models import Job
from scheduling import fires

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 3, 2, 10, 0, 30, tzinfo=UTC)
HTTP = {"url": "http://127.0.0.1:9/", "method": "GET"}


@time_machine.travel(NOW, tick=False)
def test_it_creates_a_cron_job_with_a_crontab_in_the_jobs_time_zone():
    job = services.job_create(data={"id": "a", "cron": "0 9 * * mon-fri", "timezone": "Asia/Shanghai", **HTTP})
    assert job.trigger == "cron"
    assert job.kind == "http"
    assert job.name == "a"
    assert job.next_run_at == datetime(2026, 3, 3, 1, 0, tzinfo=UTC)
    task = PeriodicTask.objects.get(crontask_job=job)
    assert task.enabled
    assert task.crontab is not None
    assert (task.crontab.minute, task.crontab.hour, task.crontab.day_of_week) == ("0", "9", "mon-fri")
    assert str(task.crontab.timezone) == "Asia/Shanghai"
    assert json.loads(task.kwargs) == {"job_id": "a"}


@time_machine.travel(NOW, tick=False)
def test_it_maps_interval_and_date_jobs_to_their_schedules():
    every = services.job_create(data={"id": "every", "interval_seconds": 90, **HTTP})
    once = services.job_create(data={"id": "once", "run_at": "2026-12-31T23:59:59+08:00", **HTTP})
    assert every.next_run_at == datetime(2026, 3, 2, 10, 2, 0, tzinfo=UTC)
    interval_task = PeriodicTask.objects.get(crontask_job=every)
    assert interval_task.interval is not None
    assert (interval_task.interval.every, interval_task.interval.period) == (90, "seconds")
    once_task = PeriodicTask.objects.get(crontask_job=once)
    assert once_task.one_off
    assert once_task.clocked is not None
    assert once_task.clocked.clocked_time == datetime(2026, 12, 31, 15, 59, 59, tzinfo=UTC)
    assert once.next_run_at == once_task.clocked.clocked_time


def test_a_manual_job_has_no_periodic_task_and_no_next_run():
    job = services.job_create(data={"id": "by-hand", **HTTP})
    assert job.trigger == "manual"
    assert job.next_run_at is None
    assert not PeriodicTask.objects.filter(crontask_job=job).exists()


@time_machine.travel(NOW, tick=False)
def test_pause_disables_the_task_and_resume_enables_it_from_now_on():
    job = services.job_create(data={"id": "p", "cron": "* * * * *", **HTTP})
    job = services.job_pause(job=job)
    assert job.status == "paused"
    assert job.next_run_at is None
    assert not PeriodicTask.objects.get(crontask_job=job).enabled
    with time_machine.travel(datetime(2026, 3, 2, 11, 0, 5, tzinfo=UTC), tick=False):
        job = services.job_resume(job=job)
    assert job.status == "active"
    assert job.next_run_at == datetime(2026, 3, 2, 11, 1, tzinfo=UTC)
    assert PeriodicTask.objects.get(crontask_job=job).enabled


@time_machine.travel(NOW, tick=False)
def test_update_switches_the_trigger_and_its_periodic_task():
    job = services.job_create(data={"id": "u", "cron": "* * * * *", **HTTP})
    job = services.job_update(job=job, data={"interval_seconds": 5})
    assert (job.trigger, job.cron, job.interval_seconds) == ("interval", "", 5)
    task = PeriodicTask.objects.get(crontask_job=job)
    assert task.crontab is None
    assert task.interval is not None
    assert task.interval.every == 5
    assert job.next_run_at == datetime(2026, 3, 2, 10, 0, 35, tzinfo=UTC)
    job = services.job_update(job=job, data={"trigger": "manual"})
    assert job.next_run_at is None
    assert not PeriodicTask.objects.filter(crontask_job=job).exists()


def test_a_duplicate_id_is_a_conflict_and_changes_nothing():
    services.job_create(data={"id": "dup", "interval_seconds": 5, **HTTP})
    with pytest.raises(JobAlreadyExists):
        services.job_create(data={"id": "dup", "interval_seconds": 60, **HTTP})
    assert Job.objects.get(pk="dup").interval_seconds == 5


def test_delete_removes_the_periodic_task_and_system_jobs_are_protected():
    job = services.job_create(data={"id": "gone", "interval_seconds": 5, **HTTP})
    task_id = job.periodic_task_id
    assert task_id is not None
    services.job_delete(job=job)
    assert not Job.objects.filter(pk="gone").exists()
    assert not PeriodicTask.objects.filter(pk=task_id).exists()
    system = services.job_create(data={"id": "sys", "interval_seconds": 5, **HTTP})
    Job.objects.filter(pk="sys").update(is_system=True)
    system.refresh_from_db()
    with pytest.raises(JobProtected):
        services.job_delete(job=system)


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"cron": "61 * * * *"}, "cron"),
        ({"cron": "* * * * *", "interval_seconds": 5}, "trigger"),
        ({"interval_seconds": 0}, "interval_seconds"),
        ({"cron": "* * * * *", "timezone": "Mars/Olympus"}, "timezone"),
        ({"trigger": "cron"}, "cron"),
        ({"interval_seconds": 5, "url": "ftp://example.com/"}, "url"),
        ({"interval_seconds": 5, "url": ""}, "url"),
        ({"interval_seconds": 5, "headers": {"X-A": "a\r\nInjected: 1"}}, "headers"),
        ({"interval_seconds": 5, "id": "-bad id"}, "id"),
        ({"interval_seconds": 5, "colour": "red"}, "colour"),
        ({"run_at": "2020-01-01T00:00:00Z"}, "run_at"),
        ({"kind": "shell", "command": "echo hi", "interval_seconds": 5}, "kind"),
    ],
)
def test_bad_input_names_the_field_and_saves_nothing(data, field):
    payload = {"id": "bad", "url": "http://127.0.0.1:9/", **data}
    with pytest.raises(ValidationError) as exc:
        services.job_create(data=payload)
    assert field in exc.value.message_dict
    assert not Job.objects.exists()
    assert not PeriodicTask.objects.exists()


def test_an_id_is_generated_when_none_is_given():
    job = services.job_create(data={"interval_seconds": 5, **HTTP})
    assert len(job.id) == 12
    assert job.name == job.id


def _fired_one_off(job_id: str, run_at: datetime) -> Job:
    """A one-off whose fire beat has claimed at ``run_at``, with the run that fire made."""
    from runs.models import Run

    with time_machine.travel(run_at.replace(hour=9), tick=False):
        job = services.job_create(data={"id": job_id, "run_at": run_at.isoformat(), **HTTP})
    with time_machine.travel(run_at, tick=False):
        fires.claim_due_fires(now=run_at, limit=10)
    Run.objects.create(job=job, trigger="scheduled", scheduled_for=run_at, status="running", started_at=run_at)
    return Job.objects.get(pk=job_id)


def test_a_completed_one_off_is_not_fired_again_by_reactivating_it():
    job = _fired_one_off("once", NOW)
    Job.objects.filter(pk="once").update(status=Job.Status.COMPLETED)  # as its run leaves it
    with time_machine.travel(NOW.replace(hour=11), tick=False), pytest.raises(ValidationError) as refused:
        services.job_update(job=job, data={"status": "active"})
    assert "new run_at" in str(refused.value.message_dict["status"])
    assert Job.objects.get(pk="once").next_run_at is None
    later = NOW.replace(hour=12)
    with time_machine.travel(NOW.replace(hour=11), tick=False):
        job = services.job_update(job=job, data={"run_at": later.isoformat()})  # a new date runs again
    assert (job.status, job.next_run_at) == ("active", later)


def test_pausing_and_resuming_a_one_off_while_its_run_goes_on_does_not_fire_it_twice():
    job = _fired_one_off("once", NOW)
    with time_machine.travel(NOW.replace(second=40), tick=False):
        services.job_pause(job=job)
        job = services.job_resume(job=job)
    assert job.next_run_at is None
    assert job.status == Job.Status.COMPLETED  # it had fired: resuming it has nothing left to do
    with time_machine.travel(NOW.replace(second=45), tick=False):
        assert fires.claim_due_fires(now=NOW.replace(second=45), limit=10) == []


def test_a_one_off_whose_time_passed_while_paused_needs_a_new_date():
    with time_machine.travel(NOW, tick=False):
        job = services.job_pause(job=services.job_create(data={"id": "held", "run_at": "2026-03-02T11:00:00Z", **HTTP}))
    with time_machine.travel(NOW.replace(hour=12), tick=False):
        with pytest.raises(ValidationError) as refused:
            services.job_resume(job=job)
        assert "run_at" in refused.value.message_dict
        with pytest.raises(ValidationError):
            services.job_update(job=job, data={"status": "active"})
    assert Job.objects.get(pk="held").status == Job.Status.PAUSED


def test_a_one_off_whose_fire_a_worker_recorded_is_completed_on_resume():
    """A fire from another scheduler's message (the stock DatabaseScheduler: beat recorded no run)
    is noted on the job by the worker that claims it, as beat notes the fires it claims."""
    from runs.claims import Claimant, claim_fire

    at = datetime(2026, 3, 2, 11, 0, tzinfo=UTC)
    with time_machine.travel(NOW, tick=False):
        job = services.job_pause(job=services.job_create(data={"id": "once", "run_at": at.isoformat(), **HTTP}))
    claim_fire(job=Job.objects.get(pk="once"), scheduled_for=at, attempt=1, by=Claimant("w", "t", now=at))
    with time_machine.travel(NOW.replace(hour=12), tick=False):
        assert services.job_resume(job=job).status == Job.Status.COMPLETED


def test_a_naive_run_date_in_an_update_is_read_in_the_jobs_own_zone():
    with time_machine.travel(NOW, tick=False):
        job = services.job_create(data={"id": "sh", "cron": "0 9 * * *", "timezone": "Asia/Shanghai", **HTTP})
        job = services.job_update(
            job=job, data={"trigger": "date", "trigger_args": {"run_date": "2026-12-31T23:59:59"}}
        )
    assert job.run_at == datetime(2026, 12, 31, 15, 59, 59, tzinfo=UTC)


def test_a_step_from_a_start_is_written_so_the_stock_scheduler_can_read_it():
    from celery.schedules import crontab as celery_crontab

    with time_machine.travel(NOW, tick=False):
        job = services.job_create(data={"id": "steps", "cron": "3/5 1/6 * * 1,2/2", **HTTP})
    assert job.periodic_task is not None
    row = job.periodic_task.crontab
    assert row is not None
    assert (row.minute, row.hour, row.day_of_week) == ("3-59/5", "1-23/6", "1,2-6/2")
    schedule = celery_crontab(row.minute, row.hour, row.day_of_week, row.day_of_month, row.month_of_year)
    assert sorted(schedule.minute)[:3] == [3, 8, 13]  # type: ignore[attr-defined]  # celery-types omits crontab's fields
    assert job.cron == "3/5 1/6 * * 1,2/2"  # the job keeps what was given; cronsim reads it the same way
