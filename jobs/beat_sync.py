"""Keep each job's django-celery-beat PeriodicTask in step with the job.

The PeriodicTask is derived data: Job is the source of truth, and ``sync_periodic_task`` can
rebuild it at any time (``manage.py sync_schedules``). Our beat scheduler fires jobs from
``Job.next_run_at``, so these rows exist to keep the schedule visible and portable (the
vanilla DatabaseScheduler runs them too, which the benchmark relies on).

Schedule rows (crontab, interval, clocked) are shared between tasks and cascade on delete:
they are fetched with get_or_create and never deleted here.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from django_celery_beat.models import ClockedSchedule, CrontabSchedule, IntervalSchedule, PeriodicTask

if TYPE_CHECKING:
    from jobs.models import Job

EXECUTE_TASK = "runs.tasks.execute_job"
EXECUTE_FIRES_TASK = "runs.tasks.execute_fires"  # several HTTP fires due together (scheduling.publisher)


def periodic_task_name(job_id: str) -> str:
    return f"crontask:{job_id}"


def sync_periodic_task(job: Job) -> PeriodicTask | None:
    """Create, update or remove the job's PeriodicTask to match it. Call inside the job's transaction."""
    if job.trigger == job.Trigger.MANUAL:
        remove_periodic_task(job)
        return None
    # A task left behind by a job deleted outside the services is taken over, not duplicated.
    name = periodic_task_name(job.id)
    task = job.periodic_task or PeriodicTask.objects.filter(name=name).first() or PeriodicTask(name=name)
    task.task = EXECUTE_TASK
    task.kwargs = json.dumps({"job_id": job.id})
    task.description = f"Derived from job {job.id}; edit the job, not this task."
    task.enabled = job.status == job.Status.ACTIVE
    task.crontab = task.interval = task.clocked = None
    task.one_off = False
    if job.trigger == job.Trigger.CRON:
        task.crontab = crontab_for(job.cron, job.timezone)
    elif job.trigger == job.Trigger.INTERVAL and job.interval_seconds is not None:
        task.interval, _ = IntervalSchedule.objects.get_or_create(
            every=job.interval_seconds, period=IntervalSchedule.SECONDS
        )
    elif job.trigger == job.Trigger.DATE and job.run_at is not None:
        task.clocked, _ = ClockedSchedule.objects.get_or_create(clocked_time=job.run_at)
        task.one_off = True
    else:  # ruled out by the database (the job_trigger_fields constraint)
        raise ValueError(f"job {job.id}: a {job.trigger} trigger without its schedule")
    task.save()
    if job.periodic_task_id != task.pk:
        job.periodic_task = task
        type(job).objects.filter(pk=job.pk).update(periodic_task=task)
    return task


def remove_periodic_task(job: Job) -> None:
    if job.periodic_task_id is not None:
        PeriodicTask.objects.filter(pk=job.periodic_task_id).delete()
        job.periodic_task = None


def crontab_for(expr: str, timezone: str) -> CrontabSchedule:
    """The shared crontab row for a job's cron in its time zone, in the form celery's crontab reads."""
    fields = expr.split()
    # A crontab row has no seconds field: a 6-field expression is kept to minute precision
    # here. Our scheduler reads the job's own cron and fires at the exact seconds.
    if len(fields) == 6:
        fields = fields[1:]
    minute, hour, day_of_month, month_of_year, day_of_week = (
        _celery_steps(field, last) for field, last in zip(fields, _LAST_VALUES, strict=True)
    )
    crontab, _ = CrontabSchedule.objects.get_or_create(
        minute=minute,
        hour=hour,
        day_of_month=day_of_month,
        month_of_year=month_of_year,
        day_of_week=day_of_week,
        timezone=timezone,
    )
    return crontab


# The largest value of each crontab field (minute, hour, day of month, month, day of week).
_LAST_VALUES = (59, 23, 31, 12, 6)


def _celery_steps(field: str, last: int) -> str:
    """``3/5`` as ``3-59/5``: cron (and cronsim) read a start with a step as "from there to the
    end", celery's crontab only the range form, and the stock scheduler drops what it cannot read."""
    return ",".join(
        f"{start}-{last}/{step}" if start.isdigit() and step.isdigit() else item
        for item in field.split(",")
        for start, _, step in [item.partition("/")]
    )
