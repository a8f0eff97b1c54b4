"""Keep each job's django-celery-beat PeriodicTask in step with the job.

The PeriodicTask is derived data: Job is the source of truth, and ``sync_periodic_task`` can
rebuild it at any time (``manage.py sync_schedules``). Our beat scheduler fires jobs from
``Job.next_run_at``, so these rows exist to keep the schedule visible and portable (the
vanilla DatabaseScheduler runs them too, which the benchmark relies on).

Schedule rows (crontab, interval, clocked) are shared between tasks and cascade on delete:
each is found or made (``shared_row``: one statement on PostgreSQL) and never deleted here.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from django.db import connection, transaction
from django.db.models import Field, Model
from django.utils.timezone import now
from django_celery_beat.models import (
    ClockedSchedule,
    CrontabSchedule,
    IntervalSchedule,
    PeriodicTask,
    PeriodicTasks,
)

from core.bulk_insert import insert_many
from core.rows import upsert_row

if TYPE_CHECKING:
    from jobs.models import Job

_Row = TypeVar("_Row", bound=Model)

EXECUTE_TASK = "runs.tasks.execute_job"
EXECUTE_FIRES_TASK = "runs.tasks.execute_fires"  # several HTTP fires due together (scheduling.publisher)


def periodic_task_name(job_id: str) -> str:
    return f"crontask:{job_id}"


def sync_periodic_task(job: Job) -> PeriodicTask | None:
    """Create, update or remove the job's PeriodicTask to match it. Call inside the job's transaction."""
    task = periodic_task_for(job)
    if task is None:
        remove_periodic_task(job)
        return None
    schedules_changed()
    if job.periodic_task_id != task.pk:
        job.periodic_task = task
        type(job).objects.filter(pk=job.pk).update(periodic_task=task)
    return task


#: What a sync writes of a PeriodicTask (the rest, such as its run counts, is beat's).
_SYNCED_FIELDS = ["task", "kwargs", "description", "enabled", "one_off", "crontab", "interval", "clocked", "solar"]


def periodic_task_for(job: Job) -> PeriodicTask | None:
    """The job's PeriodicTask, written as the job says, in one statement: an insert, or the update
    of the task of that name (a job's, or one left behind by a job deleted outside the services,
    taken over rather than duplicated). None, and nothing written, for a manual job. It does not
    link the job to it (``sync_periodic_task`` does; a create sets ``periodic_task`` before its
    insert) nor tell beat (``schedules_changed``, once per transaction is enough).

    Not ``PeriodicTask.save``: its signals and checks cost four more statements a job, and a bulk
    create writes thousands of these at once (``jobs.bulk``)."""
    tasks = periodic_tasks_for([job])
    return tasks[0] if tasks else None


def periodic_tasks_for(
    jobs: list[Job], schedules: ScheduleRows | None = None, *, stream: bool = False
) -> list[PeriodicTask]:
    """``periodic_task_for`` for many jobs at once (the manual ones have none: the list holds
    those of the others, in order); ``schedules`` remembers the shared schedule rows between calls.
    ``stream``: the tasks whose names are free are inserted by ``core.bulk_insert.insert_many``
    (COPY on PostgreSQL), the others as below; two more queries (the names taken, the new ids),
    worth it for the thousands of a bulk create (``jobs.bulk``), not for one job."""
    schedules = schedules or ScheduleRows()
    schedules.fetch_crontabs((job.cron, job.timezone) for job in jobs if job.trigger == job.Trigger.CRON)
    tasks = []
    for job in jobs:
        if job.trigger == job.Trigger.MANUAL:
            continue
        task = PeriodicTask(
            name=periodic_task_name(job.id),
            task=EXECUTE_TASK,
            kwargs=json.dumps({"job_id": job.id}),
            description=f"Derived from job {job.id}; edit the job, not this task.",
            enabled=job.status == job.Status.ACTIVE,
            one_off=False,
        )
        if job.trigger == job.Trigger.CRON:
            task.crontab = schedules.crontab(job.cron, job.timezone)
        elif job.trigger == job.Trigger.INTERVAL and job.interval_seconds is not None:
            task.interval = schedules.interval(job.interval_seconds)
        elif job.trigger == job.Trigger.DATE and job.run_at is not None:
            task.clocked = schedules.clocked(job.run_at)
            task.one_off = True
        else:  # ruled out by the database (the job_trigger_fields constraint)
            raise ValueError(f"job {job.id}: a {job.trigger} trigger without its schedule")
        tasks.append(task)
    upserted = tasks
    if stream and tasks:
        taken = set(PeriodicTask.objects.filter(name__in=[t.name for t in tasks]).values_list("name", flat=True))
        insert_many(PeriodicTask, [task for task in tasks if task.name not in taken])
        upserted = [task for task in tasks if task.name in taken]
    # As PeriodicTask.save: a disabled task forgets when it last ran (the stock beat reads it).
    for enabled in (True, False):
        some = [task for task in upserted if task.enabled is enabled]
        fields = [*_SYNCED_FIELDS, "date_changed", *([] if enabled else ["last_run_at"])]
        if len(some) == 1:  # one job's (a create or update): the same statement, its SQL built once
            upsert_row(some[0], unique_field="name", update_fields=fields)
        elif some:
            PeriodicTask.objects.bulk_create(
                some, batch_size=1000, update_conflicts=True, unique_fields=["name"], update_fields=fields
            )
    missing = [task for task in tasks if task.pk is None]  # a database that returns no ids
    if missing:
        ids = dict(PeriodicTask.objects.filter(name__in=[t.name for t in missing]).values_list("name", "pk"))
        for task in missing:
            task.pk = ids[task.name]
    return tasks


def schedules_changed() -> None:
    """Tell beat the PeriodicTasks changed (django-celery-beat's ``PeriodicTasks`` row, which the
    stock scheduler polls; its own signals do this after each save, in two statements)."""
    if connection.vendor == "postgresql":  # the ORM's UPDATE, its SQL built once: every write sends it
        field = PeriodicTasks._meta.get_field("last_update")
        with transaction.mark_for_rollback_on_error(), connection.cursor() as cursor:  # as update()
            cursor.execute(_touch_sql(), [field.get_db_prep_save(now(), connection), 1])
            touched = cursor.rowcount
    else:
        touched = PeriodicTasks.objects.filter(ident=1).update(last_update=now())
    if not touched:
        PeriodicTasks.update_changed()  # the row's first time


@functools.cache
def _touch_sql() -> str:
    """``PeriodicTasks.objects.filter(ident=1).update(last_update=…)``'s statement."""
    meta, quote = PeriodicTasks._meta, connection.ops.quote_name
    table, column = quote(meta.db_table), quote(str(meta.get_field("last_update").column))
    return f"UPDATE {table} SET {column} = %s WHERE {table}.{quote(str(meta.get_field('ident').column))} = %s"  # noqa: S608 (the model's own names)


class ScheduleRows:
    """The shared schedule rows (crontab, interval, clocked), each fetched or created once."""

    def __init__(self) -> None:
        self.forget()

    def forget(self) -> None:
        """Fetch each again (after a rollback, which may have taken back rows made here)."""
        self._crontabs: dict[tuple[str, ...], CrontabSchedule] = {}
        self._intervals: dict[int, IntervalSchedule] = {}
        self._clocked: dict[datetime, ClockedSchedule] = {}

    def crontab(self, expr: str, timezone: str) -> CrontabSchedule:
        key = crontab_fields(expr, timezone)
        if key not in self._crontabs:
            self._crontabs[key] = crontab_for(expr, timezone)
        return self._crontabs[key]

    def fetch_crontabs(self, crons: Iterable[tuple[str, str]]) -> None:
        """Have the rows of these (cron, zone) pairs at hand: those that exist in one query, the
        others made in one insert (a bulk create would otherwise look each up on its own)."""
        wanted = {crontab_fields(expr, zone) for expr, zone in crons} - self._crontabs.keys()
        if not wanted:
            return
        if len(wanted) == 1 and connection.vendor == "postgresql":  # one job's: found or made in one statement
            (key,) = wanted
            self._crontabs[key] = shared_row(CrontabSchedule, **dict(zip(CRONTAB_KEY, key, strict=True)))
            return
        columns = {name: {key[n] for key in wanted} for n, name in enumerate(CRONTAB_KEY)}
        rows = CrontabSchedule.objects.filter(
            minute__in=columns["minute"], hour__in=columns["hour"], timezone__in=columns["timezone"]
        ).order_by("-pk")  # the first row of a key wins (see crontab_for): set last
        # In chunks (a server-side cursor on PostgreSQL) for the keys of many jobs (a bulk create);
        # one job's (a create or update through the API) in one query: the cursor's DECLARE,
        # FETCHes and CLOSE were three round trips more than its rows are worth.
        for row in rows.iterator(chunk_size=2000) if len(wanted) > 1 else rows:
            key = tuple(str(getattr(row, name)) for name in CRONTAB_KEY)
            if key in wanted:
                self._crontabs[key] = row
        missing = [
            CrontabSchedule(**dict(zip(CRONTAB_KEY, key, strict=True))) for key in wanted - self._crontabs.keys()
        ]
        for row in CrontabSchedule.objects.bulk_create(missing, batch_size=1000):
            if row.pk is None:  # a database that returns no ids: made one by one instead
                row = crontab_for(*_as_cron(row))
            self._crontabs[tuple(str(getattr(row, name)) for name in CRONTAB_KEY)] = row

    def interval(self, every: int) -> IntervalSchedule:
        if every not in self._intervals:
            self._intervals[every] = shared_row(IntervalSchedule, every=every, period=IntervalSchedule.SECONDS)
        return self._intervals[every]

    def clocked(self, when: datetime) -> ClockedSchedule:
        if when not in self._clocked:
            self._clocked[when] = shared_row(ClockedSchedule, clocked_time=when)
        return self._clocked[when]


def shared_row(model: type[_Row], **values: Any) -> _Row:
    """The first row (the lowest id) of ``model`` with these ``values``, else a new one with them.

    Not ``get_or_create``: the schedule tables have no unique key, so two creators at once may
    each add a row, and its ``get`` would then fail on the two (the first is the one everyone
    takes); and it costs a SELECT, then a SAVEPOINT, the INSERT and its RELEASE. On PostgreSQL one
    statement (a SELECT and an INSERT … WHERE NOT EXISTS in a WITH); elsewhere a SELECT and an INSERT."""
    rows = model._default_manager
    if connection.vendor != "postgresql":
        found = rows.filter(**values).order_by("pk").first()
        if found is not None:
            return found
        # As the PostgreSQL insert below and the crontabs' bulk insert: without django-celery-beat's
        # post_save (which tells beat; the services do, once, for the task that uses the row).
        made = rows.bulk_create([model(**values)])[0]
        return made if made.pk is not None else rows.filter(**values).order_by("pk")[0]  # no ids returned
    row = model(**values)
    sql, fields, matched = _shared_row_sql(model, frozenset(values))
    inserted = [field.get_db_prep_save(field.pre_save(row, True), connection) for field in fields]
    with connection.cursor() as cursor:
        cursor.execute(sql, [*(inserted[index] for index in matched), *inserted])
        (row.pk,) = cursor.fetchone()
    row._state.adding = False
    row._state.db = connection.alias
    return row


@functools.cache
def _shared_row_sql(model: type[Model], names: frozenset[str]) -> tuple[str, list[Field[Any, Any]], list[int]]:
    """``shared_row``'s statement for ``model`` and the fields named, built once: the SQL, the
    fields it inserts, and which of them (by position) it looks a row up by."""
    meta = model._meta
    quote = connection.ops.quote_name
    fields = [field for field in meta.concrete_fields if not field.primary_key]
    matched = [index for index, field in enumerate(fields) if field.name in names]
    table, pk = quote(meta.db_table), quote(str(meta.pk.column if meta.pk else "id"))
    where = " AND ".join(f"{quote(str(fields[index].column))} = %s" for index in matched)
    sql = (
        f"WITH found AS (SELECT {pk} FROM {table} WHERE {where} ORDER BY {pk} LIMIT 1),"  # noqa: S608 (the model's own names)
        f" made AS (INSERT INTO {table} ({', '.join(quote(str(field.column)) for field in fields)})"
        f" SELECT {', '.join(['%s'] * len(fields))} WHERE NOT EXISTS (SELECT 1 FROM found) RETURNING {pk})"
        f" SELECT {pk} FROM found UNION ALL SELECT {pk} FROM made"
    )
    return sql, fields, matched


def remove_periodic_task(job: Job) -> None:
    if job.periodic_task_id is not None:
        PeriodicTask.objects.filter(pk=job.periodic_task_id).delete()
        job.periodic_task = None


def crontab_for(expr: str, timezone: str) -> CrontabSchedule:
    """The shared crontab row for a job's cron in its time zone, in the form celery's crontab reads."""
    fields = crontab_fields(expr, timezone)
    found = CrontabSchedule.objects.filter(**dict(zip(CRONTAB_KEY, fields, strict=True))).order_by("pk").first()
    # Not get_or_create: the table has no unique key, so two creators at once may each add one,
    # and get() would then fail on the two. The first is the one everyone takes.
    return found or CrontabSchedule.objects.create(**dict(zip(CRONTAB_KEY, fields, strict=True)))


#: A CrontabSchedule's identity: the columns ``crontab_fields`` gives, in order.
CRONTAB_KEY = ("minute", "hour", "day_of_month", "month_of_year", "day_of_week", "timezone")


def crontab_fields(expr: str, timezone: str) -> tuple[str, ...]:
    """A cron in its zone as CrontabSchedule's columns (``CRONTAB_KEY``)."""
    fields = expr.split()
    # A crontab row has no seconds field: a 6-field expression is kept to minute precision
    # here. Our scheduler reads the job's own cron and fires at the exact seconds.
    if len(fields) == 6:
        fields = fields[1:]
    return (*(_celery_steps(field, last) for field, last in zip(fields, _LAST_VALUES, strict=True)), timezone)


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


def _as_cron(row: CrontabSchedule) -> tuple[str, str]:
    return f"{row.minute} {row.hour} {row.day_of_month} {row.month_of_year} {row.day_of_week}", str(row.timezone)
