"""Changes made around the services (queryset.update(), raw SQL) are repaired by beat's walk."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.db import connection

from jobs import services
from jobs.models import Job
from scheduling import fires

pytestmark = pytest.mark.django_db

HTTP = {"url": "http://127.0.0.1:9/"}
T0 = datetime(2026, 3, 2, 10, 0, 30, tzinfo=UTC)


def reconcile(at: datetime, limit: int = 100) -> int:
    with time_machine.travel(at, tick=False):
        last, repaired = fires.reconcile_next_runs(now=at, after="", limit=limit, memo={})
    assert last == ""  # one call walked every job
    return repaired


def test_jobs_written_by_the_services_are_never_repaired():
    with time_machine.travel(T0, tick=False):
        services.job_create(data={"id": "cron5", "cron": "*/5 * * * *", **HTTP})
        services.job_create(data={"id": "cron6", "cron": "*/10 * * * * *", "timezone": "Asia/Shanghai", **HTTP})
        services.job_create(data={"id": "every", "interval_seconds": 90, **HTTP})
        services.job_create(data={"id": "once", "run_at": (T0 + timedelta(hours=1)).isoformat(), **HTTP})
        services.job_create(data={"id": "late", "run_at": "2020-01-01T00:00:00Z", "run_if_past": True, **HTTP})
        services.job_create(data={"id": "hand", **HTTP})
        services.job_pause(job=services.job_create(data={"id": "held", "cron": "0 9 * * *", **HTTP}))
    assert reconcile(T0 + timedelta(seconds=1)) == 0
    for seconds in (7, 95, 301, 3601):  # after fires claimed at various times
        at = T0 + timedelta(seconds=seconds, milliseconds=5)
        with time_machine.travel(at, tick=False):
            fires.claim_due_fires(now=at, limit=100)
        assert reconcile(at + timedelta(milliseconds=10)) == 0


def test_a_job_activated_by_a_queryset_update_gets_its_next_fire():
    with time_machine.travel(T0, tick=False):
        services.job_pause(job=services.job_create(data={"id": "m", "cron": "* * * * *", **HTTP}))
    Job.objects.filter(pk="m").update(status=Job.Status.ACTIVE)  # around the services
    assert Job.objects.get(pk="m").next_run_at is None
    assert reconcile(T0 + timedelta(seconds=2)) == 1
    assert Job.objects.get(pk="m").next_run_at == datetime(2026, 3, 2, 10, 1, tzinfo=UTC)


def test_a_cron_edited_in_sql_fires_on_its_new_schedule():
    with time_machine.travel(T0, tick=False):
        services.job_create(data={"id": "daily", "cron": "0 3 * * *", **HTTP})
    with connection.cursor() as cursor:
        cursor.execute("UPDATE jobs_job SET cron = %s WHERE id = %s", ["*/10 * * * * *", "daily"])
    assert Job.objects.get(pk="daily").next_run_at == datetime(2026, 3, 3, 3, 0, tzinfo=UTC)  # stale
    assert reconcile(T0 + timedelta(seconds=1)) == 1
    assert Job.objects.get(pk="daily").next_run_at == datetime(2026, 3, 2, 10, 0, 40, tzinfo=UTC)


def test_a_shortened_interval_and_a_moved_date_are_repaired():
    with time_machine.travel(T0, tick=False):
        services.job_create(data={"id": "hourly", "interval_seconds": 3600, **HTTP})
        services.job_create(data={"id": "once", "run_at": (T0 + timedelta(days=30)).isoformat(), **HTTP})
    Job.objects.filter(pk="hourly").update(interval_seconds=10)
    Job.objects.filter(pk="once").update(run_at=T0 + timedelta(minutes=5))
    assert reconcile(T0 + timedelta(seconds=2)) == 2
    assert Job.objects.get(pk="hourly").next_run_at == T0.replace(microsecond=0) + timedelta(seconds=12)
    assert Job.objects.get(pk="once").next_run_at == T0 + timedelta(minutes=5)


def test_a_paused_job_keeps_no_next_fire_and_a_due_one_is_left_to_the_claim():
    with time_machine.travel(T0, tick=False):
        services.job_create(data={"id": "paused-in-sql", "interval_seconds": 10, **HTTP})
        services.job_create(data={"id": "due", "interval_seconds": 10, **HTTP})
    Job.objects.filter(pk="paused-in-sql").update(status=Job.Status.PAUSED)
    Job.objects.filter(pk="due").update(cron="", interval_seconds=3600)
    assert reconcile(T0 + timedelta(seconds=11)) == 1
    assert Job.objects.get(pk="paused-in-sql").next_run_at is None
    assert Job.objects.get(pk="due").next_run_at == T0 + timedelta(seconds=10)  # due: the claim moves it on


def test_the_walk_goes_through_the_table_in_steps():
    with time_machine.travel(T0, tick=False):
        for i in range(5):
            services.job_pause(job=services.job_create(data={"id": f"j{i}", "interval_seconds": 60, **HTTP}))
    Job.objects.update(status=Job.Status.ACTIVE)
    at, after, steps, repaired = T0 + timedelta(seconds=1), "", 0, 0
    while True:
        after, fixed = fires.reconcile_next_runs(now=at, after=after, limit=2, memo={})
        steps, repaired = steps + 1, repaired + fixed
        if not after:
            break
    assert (steps, repaired) == (3, 5)


def test_beat_repairs_a_change_made_around_the_services(make_beat):
    with time_machine.travel(T0, tick=False):
        services.job_pause(job=services.job_create(data={"id": "sql", "interval_seconds": 5, **HTTP}))
    Job.objects.filter(pk="sql").update(status=Job.Status.ACTIVE)
    scheduler = make_beat()
    scheduler.publish = lambda fires: None
    with time_machine.travel(T0 + timedelta(seconds=1), tick=False):
        scheduler.fire_due_jobs()
    assert Job.objects.get(pk="sql").next_run_at == T0.replace(microsecond=0) + timedelta(seconds=6)
