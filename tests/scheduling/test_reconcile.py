"""Changes made around the services (queryset.update(), raw SQL) are repaired by beat's walk."""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import time_machine
from django.db import connection

from jobs import services
from jobs.models import Job
from jobs.triggers import jitter_offset
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


def _xid() -> int:
    """A transaction id of its own (a transaction that is committed at once)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_current_xact_id()::text::bigint")
        return int(cursor.fetchone()[0])


def _break_cron(job_id: str) -> None:
    """Edit the job's cron around the services: its next fire is left as it was."""
    with connection.cursor() as cursor:
        cursor.execute("UPDATE jobs_job SET cron = %s WHERE id = %s", ["*/10 * * * * *", job_id])


@pytest.mark.skipif(connection.vendor != "postgresql", reason="a row's xmin is PostgreSQL's")
@pytest.mark.django_db(transaction=True)  # each write its own transaction: rows written apart
def test_a_pass_after_the_first_reads_only_the_jobs_written_since_it_began():
    with time_machine.travel(T0, tick=False):
        for job_id in ("before", "since", "same"):
            services.job_create(data={"id": job_id, "cron": "0 3 * * *", **HTTP})
    _break_cron("before")
    mark = _xid()  # as fires.change_mark: every transaction from here on is at or after it
    _break_cron("since")
    at = T0 + timedelta(seconds=1)
    with time_machine.travel(at, tick=False):
        assert fires.reconcile_next_runs(now=at, after="", limit=100, memo={}, changed_since=mark) == ("", 1)
    assert Job.objects.get(pk="since").next_run_at == datetime(2026, 3, 2, 10, 0, 40, tzinfo=UTC)
    assert Job.objects.get(pk="before").next_run_at == datetime(2026, 3, 3, 3, 0, tzinfo=UTC)  # not read
    assert reconcile(at) == 1  # a pass over every job finds it
    assert Job.objects.get(pk="before").next_run_at == datetime(2026, 3, 2, 10, 0, 40, tzinfo=UTC)


@pytest.mark.skipif(connection.vendor != "postgresql", reason="a row's xmin is PostgreSQL's")
@pytest.mark.django_db(transaction=True)
def test_the_change_mark_is_at_or_before_every_transaction_to_come():
    mark = fires.change_mark()
    assert mark is not None
    assert _xid() >= mark


def test_beats_later_passes_read_only_the_jobs_written_since_the_one_before_began(make_beat, monkeypatch):
    calls: list[dict[str, Any]] = []

    def recorded(**kw: Any) -> tuple[str, int]:  # what beat asks for (a pass of one step)
        calls.append(kw)
        return "", 0

    monkeypatch.setattr(fires, "reconcile_next_runs", recorded)
    monkeypatch.setattr(fires, "change_mark", iter([101, 202, 303]).__next__)
    scheduler = make_beat()
    scheduler.publish = lambda fires: None
    for _ in range(3):
        scheduler._reconcile_pass_at = scheduler._reconcile_next = -math.inf  # a period has gone by
        scheduler.fire_due_jobs()
    assert [call["changed_since"] for call in calls] == [None, 101, 202]  # the first reads every job


def test_a_pass_whose_first_step_fails_is_made_again_from_the_same_mark(make_beat, monkeypatch):
    # The database fails as the second pass begins: the pass after it must still read every job
    # written since the first pass began (101), not only those since the failed attempt (202).
    from django.db import OperationalError

    calls: list[Any] = []

    def flaky(**kw: Any) -> tuple[str, int]:
        calls.append(kw["changed_since"])
        if len(calls) == 2:
            raise OperationalError("the connection was cut")
        return "", 0

    monkeypatch.setattr(fires, "reconcile_next_runs", flaky)
    monkeypatch.setattr(fires, "change_mark", iter([101, 202, 303, 404]).__next__)
    monkeypatch.setattr("scheduling.scheduler.close_old_connections", lambda: None)  # the test's transaction stays
    scheduler = make_beat()
    scheduler.publish = lambda fires: None
    scheduler.fire_due_jobs()  # the first pass: every job
    scheduler._reconcile_pass_at = scheduler._reconcile_next = -math.inf  # a period has gone by
    scheduler.fire_due_jobs()  # the second pass's first step fails
    scheduler._reconcile_next = scheduler.database.next_attempt = -math.inf  # the next step, and the database back
    scheduler.fire_due_jobs()
    scheduler._reconcile_pass_at = scheduler._reconcile_next = -math.inf
    scheduler.fire_due_jobs()
    assert calls == [None, 101, 101, 303]


def test_a_mark_behind_the_last_one_makes_the_next_pass_read_every_job(make_beat, monkeypatch):
    # A restored database, or a fail-over to another cluster: its transaction counter is behind the
    # last mark, and no row could be told apart by that mark.
    calls: list[Any] = []

    def recorded(**kw: Any) -> tuple[str, int]:
        calls.append(kw["changed_since"])
        return "", 0

    monkeypatch.setattr(fires, "reconcile_next_runs", recorded)
    monkeypatch.setattr(fires, "change_mark", iter([5_000, 6_000, 100, 200]).__next__)
    scheduler = make_beat()
    scheduler.publish = lambda fires: None
    for _ in range(4):
        scheduler._reconcile_pass_at = scheduler._reconcile_next = -math.inf
        scheduler.fire_due_jobs()
    assert calls == [None, 5_000, None, 100]


@pytest.fixture(params=["integers", "datetimes"])
def read_times_as(request, monkeypatch) -> str:
    """Both ways a step reads times: integers from PostgreSQL, datetimes elsewhere (SQLite)."""
    if request.param == "datetimes":
        monkeypatch.setattr(fires, "_times_as_integers", lambda: False)
    elif not fires._times_as_integers():
        pytest.skip("times are read as integers on PostgreSQL only")
    return request.param


def test_times_are_compared_to_the_microsecond(read_times_as):
    run_at = T0 + timedelta(hours=1, microseconds=123_457)
    with time_machine.travel(T0, tick=False):
        services.job_create(data={"id": "once", "run_at": run_at.isoformat(), **HTTP})
        services.job_create(data={"id": "moved", "run_at": run_at.isoformat(), **HTTP})
    assert reconcile(T0 + timedelta(seconds=1)) == 0  # right to the microsecond: left as it is
    Job.objects.filter(pk="moved").update(run_at=run_at + timedelta(microseconds=1))  # around the services
    assert reconcile(T0 + timedelta(seconds=2)) == 1
    assert Job.objects.get(pk="once").next_run_at == run_at
    assert Job.objects.get(pk="moved").next_run_at == run_at + timedelta(microseconds=1)


def test_jittered_jobs_are_right_at_their_moved_times_and_repaired_to_them(read_times_as):
    with time_machine.travel(T0, tick=False):
        services.job_create(data={"id": "jc", "cron": "0 3 * * *", "jitter_seconds": 600, **HTTP})
        services.job_create(data={"id": "ji", "interval_seconds": 3600, "jitter_seconds": 600, **HTTP})
    assert reconcile(T0 + timedelta(seconds=1)) == 0
    assert reconcile(T0 + timedelta(seconds=2)) == 0  # with the cron's next fire remembered
    offset = timedelta(seconds=jitter_offset("jc", 600))
    assert timedelta(0) < offset  # the test is about a moved fire
    _break_cron("jc")  # every 10 s
    Job.objects.filter(pk="ji").update(interval_seconds=60)
    at = T0 + timedelta(seconds=3)
    assert reconcile(at) == 2
    # its cron's first fire after now less its offset (10:00:33 - 568 s), moved by the offset
    assert offset == timedelta(seconds=568)
    assert Job.objects.get(pk="jc").next_run_at == datetime(2026, 3, 2, 9, 51, 10, tzinfo=UTC) + offset
    assert Job.objects.get(pk="ji").next_run_at == at.replace(microsecond=0) + timedelta(
        seconds=60 + jitter_offset("ji", 600)
    )


def test_a_deferred_fire_is_left_but_the_defer_policy_alone_defers_nothing(read_times_as):
    # A fire deferred to a blackout's end is not the schedule's own (scheduling.blackouts): the walk
    # leaves a later next fire of a job with calendars and the defer policy; without calendars the
    # policy holds nothing back, and such a next fire is repaired.
    with time_machine.travel(T0, tick=False):
        for job_id in ("with-calendars", "no-calendars", "skip-policy"):
            services.job_create(data={"id": job_id, "cron": "0 * * * *", **HTTP})
    later = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)
    Job.objects.filter(pk="with-calendars").update(calendars=[1], blackout_policy="defer", next_run_at=later)
    Job.objects.filter(pk="no-calendars").update(calendars=[], blackout_policy="defer", next_run_at=later)
    Job.objects.filter(pk="skip-policy").update(calendars=[1], blackout_policy="skip", next_run_at=later)
    assert reconcile(T0 + timedelta(seconds=1)) == 2
    assert Job.objects.get(pk="with-calendars").next_run_at == later
    assert Job.objects.get(pk="no-calendars").next_run_at == datetime(2026, 3, 2, 11, 0, tzinfo=UTC)
    assert Job.objects.get(pk="skip-policy").next_run_at == datetime(2026, 3, 2, 11, 0, tzinfo=UTC)


@pytest.mark.skipif(connection.vendor != "postgresql", reason="times are read as integers on PostgreSQL only")
def test_the_walk_reads_each_time_as_an_integer_on_postgresql():
    # What makes a step cheap: no datetime (about 6 µs each through Django's time zone loader),
    # nor the calendars' JSON, is loaded per row.
    from django.test.utils import CaptureQueriesContext

    with time_machine.travel(T0, tick=False):
        services.job_create(data={"id": "c", "cron": "0 3 * * *", **HTTP})
    with CaptureQueriesContext(connection) as queries:
        reconcile(T0 + timedelta(seconds=1))
    (select,) = [q["sql"] for q in queries.captured_queries if q["sql"].startswith("SELECT")]
    assert select.count("EXTRACT(EPOCH FROM") == 2
    assert '"jobs_job"."next_run_at" AS' not in select
    assert '"jobs_job"."calendars" AS' not in select


class _Clock:
    """A CPU clock for beat that each step of the walk moves on by ``spent`` seconds."""

    def __init__(self, spent: float) -> None:
        self.now, self.spent, self.calls = 0.0, spent, 0

    def __call__(self) -> float:
        self.calls += 1
        if self.calls % 2 == 0:  # read before and after each step
            self.now += self.spent
        return self.now


@pytest.mark.parametrize(
    ("spent", "wait"),
    [
        (0.002, 1.0),  # within its share (0.5 % of a core): the next step in a second
        (0.020, 4.0),  # four times its share: the next step four seconds on
        (1.000, 10.0),  # at most reconcile_max_wait
    ],
)
def test_a_step_of_the_walk_is_paced_by_the_cpu_it_took(make_beat, monkeypatch, spent, wait):
    monkeypatch.setattr(fires, "reconcile_next_runs", lambda **kw: ("j1", 0))  # a pass of many steps
    scheduler = make_beat()
    scheduler.publish = lambda fires: None
    scheduler.cpu_clock = _Clock(spent)
    before = time.monotonic()
    scheduler.reconcile()
    after = time.monotonic()
    assert before + wait <= scheduler._reconcile_next <= after + wait


def test_a_paced_walk_still_reads_every_job_once_a_pass(make_beat):
    # However long its steps wait, each goes on where the last one stopped: every job is read.
    with time_machine.travel(T0, tick=False):
        for i in range(7):
            services.job_pause(job=services.job_create(data={"id": f"j{i}", "interval_seconds": 60, **HTTP}))
    Job.objects.update(status=Job.Status.ACTIVE)  # around the services: none has a next fire
    scheduler = make_beat()
    scheduler.reconcile_max_rows = 2
    scheduler.cpu_clock = _Clock(0.05)  # each step ten times its share
    steps = 0
    while Job.objects.filter(next_run_at__isnull=True).exists():
        assert scheduler._reconcile_next > time.monotonic() or steps == 0  # paced
        scheduler._reconcile_next = -math.inf  # the wait is over
        with time_machine.travel(T0 + timedelta(seconds=1), tick=False):
            scheduler.reconcile()
        steps += 1
        assert steps <= 4  # 7 jobs, 2 a step
    assert steps == 4
