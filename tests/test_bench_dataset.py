"""The benchmark writes its jobs in bulk: they must be the rows the services would write."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.db import connection
from django_celery_beat.models import PeriodicTask

from bench.dataset import Spec, insert
from jobs import services
from jobs.models import Job

pytestmark = pytest.mark.django_db
NOW = datetime(2026, 3, 2, 10, 0, 30, tzinfo=UTC)
SPECS = [
    Spec("c5", cron="17 3 * * 1-5", timezone="Asia/Kolkata"),
    Spec("c6", cron="*/10 * * 2 * *"),
    Spec("iv", interval_seconds=3600),
    Spec("dt", run_at=NOW + timedelta(days=3)),
    Spec("held", status=Job.Status.PAUSED, interval_seconds=1),
]
FIELDS = ["trigger", "cron", "interval_seconds", "run_at", "timezone", "status", "next_run_at", "url", "kind"]


def _rows(prefix: str) -> list[tuple]:
    jobs = Job.objects.filter(id__startswith=prefix).select_related("periodic_task").order_by("id")
    rows = []
    for job in jobs:
        task = job.periodic_task
        assert task is not None
        crontab = task.crontab
        rows.append(
            (
                job.id.removeprefix(prefix),
                *(getattr(job, name) for name in FIELDS),
                task.enabled,
                task.one_off,
                json.loads(task.kwargs)["job_id"] == job.id,
                task.interval.every if task.interval else None,
                task.clocked.clocked_time if task.clocked else None,
                (crontab.minute, crontab.hour, crontab.day_of_week, str(crontab.timezone)) if crontab else None,
            )
        )
    return rows


def test_the_benchmarks_bulk_jobs_are_the_rows_the_services_write():
    with time_machine.travel(NOW, tick=False):
        insert(
            (Spec(f"bulk-{s.id}", s.status, s.cron, s.interval_seconds, s.run_at, s.timezone) for s in SPECS), now=NOW
        )
        for spec in SPECS:
            schedule = {"cron": spec.cron, "interval_seconds": spec.interval_seconds, "run_at": spec.run_at}
            data = {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in schedule.items() if v}
            services.job_create(
                data={"id": f"svc-{spec.id}", "timezone": spec.timezone, "status": spec.status,
                      "url": "http://127.0.0.1:9/", **data}
            )  # fmt: skip
    assert _rows("bulk-") == _rows("svc-")
    assert PeriodicTask.objects.filter(name__startswith="crontask:bulk-").count() == len(SPECS)


def test_the_stock_scheduler_can_read_every_schedule_the_benchmark_generates():
    import random

    from celery.schedules import crontab

    from bench.dataset import mix_specs, quiet_specs

    for make in (quiet_specs, mix_specs):
        for spec in make(3000, NOW, random.Random(1)):  # noqa: S311 - a reproducible data set
            if spec.cron:
                minute, hour, day_of_month, month_of_year, day_of_week = spec.cron.split()[-5:]
                crontab(minute, hour, day_of_week, day_of_month, month_of_year)  # raises if it cannot


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the benchmark runs on PostgreSQL (COPY) only")
def test_anchoring_starts_every_active_schedule_at_the_given_instant():
    from bench.db import anchor_schedules

    with time_machine.travel(NOW, tick=False):
        insert(iter(SPECS), now=NOW)
    later = NOW + timedelta(days=2, hours=5, seconds=7, microseconds=250)  # Wednesday 15:00:37 UTC
    anchor_schedules(later)
    next_runs = dict(Job.objects.values_list("id", "next_run_at"))
    assert next_runs["c5"] == datetime(2026, 3, 4, 21, 47, tzinfo=UTC)  # 03:17 on Thursday in Kolkata
    assert next_runs["c6"] == datetime(2026, 4, 2, tzinfo=UTC)  # every 10 s, on the 2nd of a month
    assert next_runs["iv"] == datetime(2026, 3, 4, 16, 0, 37, tzinfo=UTC)
    assert next_runs["dt"] == NOW + timedelta(days=3)  # a one-off keeps its date
    assert next_runs["held"] is None
    assert set(PeriodicTask.objects.filter(one_off=False).values_list("last_run_at", flat=True)) == {later}
