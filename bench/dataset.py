"""Generate the benchmark's jobs in bulk: the rows ``jobs.services`` would write, written faster.

Creating 100,000 jobs one service call at a time takes longer than the benchmark itself, so the
rows are built here with the services' own pieces (``Schedule`` for ``next_run_at``, the same
PeriodicTask name, task, kwargs and shared schedule rows as ``jobs.beat_sync``) and inserted with
``bulk_create``. Both schedulers then read exactly the same tables.

Two sets, both with crons of 5 and 6 fields, intervals, one-off dates and several time zones:

- ``quiet``: nothing falls due during the run on its own (daily and weekly crons away from the
  current hours, long intervals, dates next year). The benchmark itself points some of them at a
  minute for the burst tests and adds the jobs its change tests act on.
- ``mix``: a realistic mix that asks for about 1.6 % of the jobs a minute (1,600 fires a minute at
  100,000 jobs), as in the issue's measurement of the stock scheduler.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import connection, transaction
from django.db.models import Model
from django_celery_beat.models import PeriodicTask, PeriodicTasks

from jobs.beat_sync import EXECUTE_TASK, ScheduleRows, periodic_task_name
from jobs.models import Job
from jobs.triggers import Schedule, get_zone

ZONES = ["UTC", "Europe/Berlin", "America/New_York", "Asia/Shanghai", "Asia/Kolkata"]
URL = "http://127.0.0.1:9/"
CHUNK = 20_000

# Jobs the change tests act on, kept apart from the N jobs of the set (see bench.beat.Changes).
SENTINEL = "bench-sentinel"


@dataclass(frozen=True)
class Spec:
    id: str
    status: str = Job.Status.ACTIVE
    cron: str = ""
    interval_seconds: int | None = None
    run_at: datetime | None = None
    timezone: str = "UTC"

    @property
    def trigger(self) -> str:
        if self.cron:
            return Job.Trigger.CRON
        if self.interval_seconds:
            return Job.Trigger.INTERVAL
        return Job.Trigger.DATE if self.run_at else Job.Trigger.MANUAL

    @property
    def schedule(self) -> Schedule:
        return Schedule(self.trigger, self.cron, self.interval_seconds, self.run_at, self.timezone)


def quiet_specs(n: int, now: datetime, rng: random.Random) -> Iterator[Spec]:
    """N jobs of which none fires within the next three hours."""
    pick: list[tuple[float, Callable[[int], Spec]]] = [
        (0.45, lambda i: _daily(i, now, rng, weekdays="*")),
        (0.15, lambda i: _daily(i, now, rng, weekdays="1-5")),
        (0.15, lambda i: Spec(f"bench-{i:06d}", interval_seconds=rng.choice([4, 6, 8, 12, 24]) * 3600)),
        # second-level crons that only fire on one day of the month (not today)
        (0.10, lambda i: Spec(f"bench-{i:06d}", cron=f"*/10 * * {_far_day(now, rng)} * *")),
        (0.15, lambda i: Spec(f"bench-{i:06d}", run_at=now + timedelta(days=rng.randrange(30, 360)))),
    ]
    yield from _weighted(n, pick, rng)


def mix_specs(n: int, now: datetime, rng: random.Random) -> Iterator[Spec]:
    """N jobs asking for about 1.6 % of themselves a minute."""
    pick: list[tuple[float, Callable[[int], Spec]]] = [
        (
            0.56,
            lambda i: Spec(
                f"bench-{i:06d}", cron=f"{rng.randrange(60)} {rng.randrange(24)} * * *", timezone=rng.choice(ZONES)
            ),
        ),
        (0.20, lambda i: Spec(f"bench-{i:06d}", cron=f"{rng.randrange(60)} * * * *")),
        (0.08, lambda i: _every_few_minutes(i, rng)),
        (0.10, lambda i: Spec(f"bench-{i:06d}", interval_seconds=rng.choice([600, 1800, 3600, 7200]))),
        (0.0595, lambda i: Spec(f"bench-{i:06d}", run_at=now + timedelta(days=rng.randrange(1, 30)))),
        (0.0005, lambda i: Spec(f"bench-{i:06d}", cron=f"{rng.randrange(30)}/30 * * * * *")),
    ]
    yield from _weighted(n, pick, rng)


def insert(specs: Iterator[Spec], *, now: datetime) -> int:
    """Insert the jobs and their PeriodicTasks; returns how many.

    The rows are the ones ``bulk_create`` would write (each column's value as Django prepares it
    for a new object), sent with ``COPY``: a million jobs take about a minute rather than many.
    Each schedule's first fire is computed once (jobs share crons and intervals)."""
    cache = ScheduleRows()
    firsts: dict[tuple[object, ...], datetime | None] = {}
    count = 0
    batch: list[Spec] = []
    copy = connection.vendor == "postgresql"
    write = _copy_batch if copy else _bulk_batch
    for spec in specs:
        batch.append(spec)
        if len(batch) >= CHUNK:
            count += write(batch, now, cache, firsts)
            batch = []
    if batch:
        count += write(batch, now, cache, firsts)
    if copy:
        table = PeriodicTask._meta.db_table
        with connection.cursor() as cursor:  # its ids were written by COPY, not taken from the sequence
            cursor.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), COALESCE(MAX(id), 1)) FROM {table}")  # noqa: S608 (the model's own table)
    PeriodicTasks.update_changed()  # neither COPY nor bulk_create sends django-celery-beat's change signal
    return count


def _row_template(obj: Model, skip: set[str]) -> tuple[list[str], list[object]]:
    """The columns of ``obj``'s table (but ``skip``) and the values a new ``obj`` would be saved with."""
    columns: list[str] = []
    values: list[object] = []
    for field in obj._meta.concrete_fields:
        if field.attname in skip or field.column is None:
            continue
        columns.append(field.column)
        values.append(field.get_db_prep_save(field.pre_save(obj, add=True), connection))
    return columns, values


@transaction.atomic
def _bulk_batch(
    specs: list[Spec], now: datetime, cache: ScheduleRows, firsts: dict[tuple[object, ...], datetime | None]
) -> int:
    """The rows of ``_copy_batch`` by ``bulk_create``, where there is no COPY (SQLite)."""
    tasks = PeriodicTask.objects.bulk_create([_task_for(spec, cache) for spec in specs], batch_size=1000)
    jobs = []
    for spec, task in zip(specs, tasks, strict=True):
        active = spec.status == Job.Status.ACTIVE
        jobs.append(
            Job(
                id=spec.id, name=spec.id, kind=Job.Kind.HTTP, url=URL, trigger=spec.trigger, cron=spec.cron,
                interval_seconds=spec.interval_seconds, run_at=spec.run_at, timezone=spec.timezone,
                status=spec.status, periodic_task=task, shown_target=f"GET {URL}",
                next_run_at=_first_fire(spec, now, firsts) if active else None,
            )
        )  # fmt: skip
    Job.objects.bulk_create(jobs, batch_size=1000)
    return len(jobs)


def _first_fire(spec: Spec, now: datetime, firsts: dict[tuple[object, ...], datetime | None]) -> datetime | None:
    key = (spec.trigger, spec.cron, spec.interval_seconds, spec.run_at, spec.timezone)
    if key not in firsts:
        firsts[key] = spec.schedule.first_fire(now)
    return firsts[key]


@transaction.atomic
def _copy_batch(
    specs: list[Spec], now: datetime, cache: ScheduleRows, firsts: dict[tuple[object, ...], datetime | None]
) -> int:
    cache.fetch_crontabs((spec.cron, spec.timezone) for spec in specs if spec.cron)
    task_columns, task_template = _row_template(PeriodicTask(name="", task=EXECUTE_TASK), {"id"})
    job_columns, job_template = _row_template(Job(id="", name="", kind=Job.Kind.HTTP, url=URL), set())
    task_at = {name: task_columns.index(name) for name in (
        "name", "kwargs", "enabled", "description", "crontab_id", "interval_id", "clocked_id", "one_off")}  # fmt: skip
    job_at = {name: job_columns.index(name) for name in (
        "id", "name", "trigger", "cron", "interval_seconds", "run_at", "timezone", "status", "periodic_task_id",
        "next_run_at", "shown_target")}  # fmt: skip
    built = [_task_for(spec, cache) for spec in specs]  # before COPY: the cache may query the schedule rows
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT COALESCE(MAX(id), 0) FROM {PeriodicTask._meta.db_table}")  # noqa: S608
        first_id = cursor.fetchone()[0] + 1
        tasks = connection.ops.quote_name(PeriodicTask._meta.db_table)
        with cursor.cursor.copy(f"COPY {tasks} (id, {', '.join(task_columns)}) FROM STDIN") as copy:
            for n, task in enumerate(built):
                row = list(task_template)
                for name in task_at:
                    row[task_at[name]] = getattr(task, name)
                copy.write_row([first_id + n, *row])
        jobs = connection.ops.quote_name(Job._meta.db_table)
        with cursor.cursor.copy(f"COPY {jobs} ({', '.join(job_columns)}) FROM STDIN") as copy:
            for n, spec in enumerate(specs):
                active = spec.status == Job.Status.ACTIVE
                row = list(job_template)
                values = {
                    "id": spec.id, "name": spec.id, "trigger": spec.trigger, "cron": spec.cron,
                    "interval_seconds": spec.interval_seconds, "run_at": spec.run_at, "timezone": spec.timezone,
                    "status": spec.status, "periodic_task_id": first_id + n,
                    "next_run_at": _first_fire(spec, now, firsts) if active else None, "shown_target": f"GET {URL}",
                }  # fmt: skip
                for name, value in values.items():
                    row[job_at[name]] = value
                copy.write_row(row)
    return len(specs)


def _task_for(spec: Spec, cache: ScheduleRows) -> PeriodicTask:
    task = PeriodicTask(
        name=periodic_task_name(spec.id),
        task=EXECUTE_TASK,
        kwargs=json.dumps({"job_id": spec.id}),
        enabled=spec.status == Job.Status.ACTIVE,
        description=f"Derived from job {spec.id}; edit the job, not this task.",
    )
    if spec.cron:
        task.crontab = cache.crontab(spec.cron, spec.timezone)
    elif spec.interval_seconds:
        task.interval = cache.interval(spec.interval_seconds)
    elif spec.run_at is not None:
        task.clocked = cache.clocked(spec.run_at)
        task.one_off = True
    else:
        raise ValueError(f"{spec.id}: a benchmark job needs a cron, an interval or a date")
    return task


def _weighted(n: int, pick: list[tuple[float, Callable[[int], Spec]]], rng: random.Random) -> Iterator[Spec]:
    weights = [weight for weight, _ in pick]
    makers = [maker for _, maker in pick]
    for i in range(n):
        yield rng.choices(makers, weights)[0](i)


def _daily(i: int, now: datetime, rng: random.Random, *, weekdays: str) -> Spec:
    zone = rng.choice(ZONES)
    local_hour = _far_hour(now.astimezone(get_zone(zone)), rng)
    return Spec(f"bench-{i:06d}", cron=f"{rng.randrange(60)} {local_hour} * * {weekdays}", timezone=zone)


def _every_few_minutes(i: int, rng: random.Random) -> Spec:
    # "M/N": every N minutes from a random minute, so that each minute asks for about as many
    # fires as the next, and two measurement windows of the same length ask for as many.
    # ("3-59/5", not "3/5", which cronsim reads but celery's crontab, and so the stock scheduler, cannot)
    step = rng.choice([5, 10, 15, 30])
    return Spec(f"bench-{i:06d}", cron=f"{rng.randrange(step)}-59/{step} * * * *")


def _far_hour(now: datetime, rng: random.Random) -> int:
    """An hour of the day at least three hours away from ``now``'s (in ``now``'s zone)."""
    return (now.hour + rng.randrange(3, 22)) % 24


def _far_day(now: datetime, rng: random.Random) -> int:
    return (now.day + rng.randrange(2, 26)) % 28 + 1
