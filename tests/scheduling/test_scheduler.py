"""The scheduler's due check and claim, with simulated time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import pytest
import time_machine
from django.db import connection
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from jobs import services
from jobs.models import Job
from scheduling import fires as job_fires
from scheduling.fires import Fire
from tests.leader import wait_until_the_leader_lock_is_free

if TYPE_CHECKING:
    from crontask.scheduler import CrontaskScheduler

pytestmark = pytest.mark.django_db

HTTP = {"url": "http://127.0.0.1:9/"}
T0 = datetime(2026, 3, 2, 10, 0, 30, tzinfo=UTC)


def claim_at(when: datetime) -> list[tuple[str, datetime]]:
    with time_machine.travel(when, tick=False):
        return [(f.job_id, f.scheduled_for) for f in job_fires.claim_due_fires(now=when, limit=100)]


def test_a_minute_cron_fires_at_the_boundary_and_pause_and_resume_stop_and_restart_it():
    with time_machine.travel(T0, tick=False):
        job = services.job_create(data={"id": "m", "cron": "* * * * *", **HTTP})

    assert claim_at(T0 + timedelta(seconds=29)) == []  # 10:00:59, not due yet
    minute = datetime(2026, 3, 2, 10, 1, tzinfo=UTC)
    assert claim_at(minute + timedelta(milliseconds=20)) == [("m", minute)]
    assert claim_at(minute + timedelta(milliseconds=40)) == []  # claimed once only

    with time_machine.travel(minute + timedelta(seconds=5), tick=False):
        services.job_pause(job=job)
    assert claim_at(datetime(2026, 3, 2, 10, 2, 0, 100000, tzinfo=UTC)) == []
    assert claim_at(datetime(2026, 3, 2, 10, 3, 0, 100000, tzinfo=UTC)) == []

    with time_machine.travel(datetime(2026, 3, 2, 10, 3, 30, tzinfo=UTC), tick=False):
        services.job_resume(job=job)
    # the fires missed while paused (10:02, 10:03) are not made up
    assert claim_at(datetime(2026, 3, 2, 10, 4, 0, 50000, tzinfo=UTC)) == [
        ("m", datetime(2026, 3, 2, 10, 4, tzinfo=UTC))
    ]


def test_a_second_scheduler_cannot_claim_a_fire_already_claimed():
    with time_machine.travel(T0, tick=False):
        services.job_create(data={"id": "i", "interval_seconds": 10, **HTTP})
    due = T0 + timedelta(seconds=10, milliseconds=1)
    first = claim_at(due)
    second = claim_at(due)
    assert first == [("i", T0.replace(microsecond=0) + timedelta(seconds=10))]
    assert second == []
    assert Job.objects.get(pk="i").next_run_at == T0 + timedelta(seconds=20)


def test_a_date_job_fires_once_and_a_restart_does_not_fire_it_again():
    run_at = T0 + timedelta(minutes=5)
    with time_machine.travel(T0, tick=False):
        services.job_create(data={"id": "d", "run_at": run_at.isoformat(), **HTTP})
    assert claim_at(run_at + timedelta(milliseconds=5)) == [("d", run_at)]
    assert Job.objects.get(pk="d").next_run_at is None
    assert claim_at(run_at + timedelta(seconds=30)) == []


def test_a_manual_job_never_fires_by_itself():
    with time_machine.travel(T0, tick=False):
        services.job_create(data={"id": "h", **HTTP})
    assert claim_at(T0 + timedelta(days=400)) == []


def test_the_parent_scheduler_only_loads_periodic_tasks_that_are_not_jobs(make_beat):
    services.job_create(data={"id": "job-owned", "interval_seconds": 5, **HTTP})
    every_minute, _ = IntervalSchedule.objects.get_or_create(every=60, period=IntervalSchedule.SECONDS)
    PeriodicTask.objects.create(name="housekeeping", task="celery.ping", interval=every_minute)
    scheduler = make_beat()
    names = {task.name for task in scheduler.enabled_models_qs()}
    assert names == {"housekeeping"}


def test_the_scheduler_publishes_due_fires_with_their_nominal_time(make_beat):
    with time_machine.travel(T0, tick=False):
        services.job_create(data={"id": "pub", "interval_seconds": 10, **HTTP})
    published: list[Fire] = []
    scheduler = make_beat()
    scheduler.publish = published.extend
    with time_machine.travel(T0 + timedelta(seconds=10, milliseconds=3), tick=False):
        sleep = scheduler.fire_due_jobs()
    assert [(f.job_id, f.scheduled_for) for f in published] == [("pub", datetime(2026, 3, 2, 10, 0, 40, tzinfo=UTC))]
    assert 0 < sleep <= 1.0


def test_a_beat_restart_right_after_a_date_fire_does_not_fire_it_again(make_beat):
    run_at = T0 + timedelta(minutes=1)
    with time_machine.travel(T0, tick=False):
        services.job_create(data={"id": "once", "run_at": run_at.isoformat(), **HTTP})
    first: list[Fire] = []
    restarted: list[Fire] = []
    beat = make_beat()
    beat.publish = first.extend
    with time_machine.travel(run_at + timedelta(milliseconds=2), tick=False):
        beat.fire_due_jobs()
    beat.leader.release()  # the first beat's process ends
    wait_until_the_leader_lock_is_free()  # then the server's process for its session
    beat_after_restart = make_beat()
    beat_after_restart.publish = restarted.extend
    with time_machine.travel(run_at + timedelta(seconds=1), tick=False):
        beat_after_restart.fire_due_jobs()
    assert beat_after_restart.leader.is_leader or not beat_after_restart.leader.needed
    assert [f.job_id for f in first] == ["once"]
    assert restarted == []


def test_a_past_run_at_is_accepted_with_run_if_past_and_fires_now():
    with time_machine.travel(T0, tick=False):
        job = services.job_create(data={"id": "late", "run_at": "2020-01-01T00:00:00Z", "run_if_past": True, **HTTP})
    assert job.next_run_at == T0
    assert claim_at(T0 + timedelta(milliseconds=5)) == [("late", T0)]


def test_next_run_at_follows_each_fire_of_a_seconds_cron():
    with time_machine.travel(T0, tick=False):
        services.job_create(data={"id": "s", "cron": "*/10 * * * * *", **HTTP})
    fires = []
    for second in (40, 50, 60, 70):
        fires += claim_at(datetime(2026, 3, 2, 10, 0, 0, 1000, tzinfo=UTC) + timedelta(seconds=second))
    assert [f[1].strftime("%M:%S") for f in fires] == ["00:40", "00:50", "01:00", "01:10"]
    assert Job.objects.get(pk="s").next_run_at == datetime(2026, 3, 2, 10, 1, 20, tzinfo=UTC)


def test_a_schedule_broken_outside_the_services_does_not_stop_the_others():
    with time_machine.travel(T0, tick=False):
        services.job_create(data={"id": "broken", "cron": "* * * * *", **HTTP})
        services.job_create(data={"id": "fine", "cron": "* * * * *", **HTTP})
    Job.objects.filter(pk="broken").update(cron="not a cron")  # raw edit, around the services
    minute = datetime(2026, 3, 2, 10, 1, tzinfo=UTC)
    assert sorted(claim_at(minute + timedelta(milliseconds=10))) == [("broken", minute), ("fine", minute)]
    assert Job.objects.get(pk="broken").next_run_at is None
    assert Job.objects.get(pk="fine").next_run_at == minute + timedelta(minutes=1)


def test_the_publisher_sends_the_message_the_worker_task_takes():
    from kombu import Connection

    from crontask.celery import app
    from scheduling.fires import Fire
    from scheduling.publisher import FirePublisher

    fires = [Fire(job_id=f"j{i}", scheduled_for=T0.replace(microsecond=0) + timedelta(seconds=i)) for i in range(3)]
    with Connection("memory://") as conn:
        publisher = FirePublisher(app, conn.Producer())
        publisher.publish(fires)
        queue = publisher.queue(conn.default_channel)
        received = [queue.get(no_ack=True) for _ in fires]
        assert queue.get(no_ack=True) is None
    assert {m.headers["task"] for m in received} == {"runs.tasks.execute_job"}
    assert len({m.headers["id"] for m in received}) == 3
    bodies = [m.decode() for m in received]
    assert [kwargs for _args, kwargs, _embed in bodies] == [
        {"job_id": f.job_id, "scheduled_for": f.scheduled_for.isoformat()} for f in fires
    ]
    assert all(args == [] for args, _kwargs, _embed in bodies)


def published(fires, batch_size: int, settings) -> list[tuple[str, dict]]:
    """(task, kwargs) of each message the publisher sends for ``fires``."""
    from kombu import Connection

    from crontask.celery import app
    from scheduling.publisher import FirePublisher

    settings.CRONTASK_FIRE_BATCH_SIZE = batch_size
    with Connection("memory://") as conn:
        publisher = FirePublisher(app, conn.Producer())
        publisher.publish(fires)
        queue = publisher.queue(conn.default_channel)
        messages = []
        while (message := queue.get(no_ack=True)) is not None:
            _args, kwargs, _embed = message.decode()
            messages.append((message.headers["task"], kwargs))
    return messages


def test_the_http_fires_of_a_burst_go_out_in_even_batches_and_the_others_alone(settings):
    from scheduling.fires import Fire

    at = T0.replace(microsecond=0)
    calls = [Fire(job_id=f"h{i:02d}", scheduled_for=at, kind="http") for i in range(45)]
    others = [Fire(job_id="py", scheduled_for=at, kind="python"), Fire(job_id="sh", scheduled_for=at, kind="shell")]
    messages = published(calls[:20] + others + calls[20:], 20, settings)

    singles = [kwargs for task, kwargs in messages if task == "runs.tasks.execute_job"]
    assert singles == [{"job_id": f.job_id, "scheduled_for": at.isoformat()} for f in others]
    batches = [kwargs["fires"] for task, kwargs in messages if task == "runs.tasks.execute_fires"]
    assert [len(batch) for batch in batches] == [15, 15, 15]  # 45 in three, evenly
    assert sorted(job_id for batch in batches for job_id, _ in batch) == [f.job_id for f in calls]
    assert {when for batch in batches for _, when in batch} == {at.isoformat()}


def test_a_lone_http_fire_and_a_batch_size_of_one_send_each_fire_on_its_own(settings):
    from scheduling.fires import Fire

    at = T0.replace(microsecond=0)
    calls = [Fire(job_id=f"h{i}", scheduled_for=at, kind="http") for i in range(3)]
    assert published(calls[:1], 20, settings) == [
        ("runs.tasks.execute_job", {"job_id": "h0", "scheduled_for": at.isoformat()})
    ]
    assert published(calls, 1, settings) == [
        ("runs.tasks.execute_job", {"job_id": f.job_id, "scheduled_for": at.isoformat()}) for f in calls
    ]


def test_a_claimed_fire_carries_its_jobs_kind(settings):
    settings.CRONTASK_ALLOW_SHELL = True
    with time_machine.travel(T0, tick=False):
        services.job_create(data={"id": "call", "interval_seconds": 10, **HTTP})
        services.job_create(data={"id": "sh", "interval_seconds": 10, "kind": "shell", "command": "true"})
    with time_machine.travel(T0 + timedelta(seconds=10), tick=False):
        fires = job_fires.claim_due_fires(now=T0 + timedelta(seconds=10), limit=10)
    assert sorted((f.job_id, f.kind) for f in fires) == [("call", "http"), ("sh", "shell")]


def test_a_beat_taking_over_fires_what_fell_due_once_and_each_jobs_misfire_grace_decides(make_beat, http_target):
    from runs import execution
    from runs.models import Run

    with time_machine.travel(T0, tick=False):
        services.job_create(data={"id": "strict", "interval_seconds": 2, "misfire_grace_seconds": 3,
                                  "url": f"{http_target.url}/"})  # fmt: skip
        services.job_create(data={"id": "lenient", "interval_seconds": 2, "url": f"{http_target.url}/"})
    # the leader died right after T0; the standby takes over 9 s later
    standby = make_beat()
    published: list[Fire] = []
    standby.publish = published.extend
    takeover = T0 + timedelta(seconds=9)
    with time_machine.travel(takeover, tick=False):
        standby.fire_due_jobs()
        for fire in published:
            execution.run_execute(job_id=fire.job_id, scheduled_for=fire.scheduled_for)
    missed = T0.replace(microsecond=0) + timedelta(seconds=2)
    assert sorted((f.job_id, f.scheduled_for) for f in published) == [("lenient", missed), ("strict", missed)]
    assert Run.objects.get(job_id="strict", scheduled_for=missed).status == "skipped"  # 7 s late, grace 3 s
    assert Run.objects.get(job_id="lenient", scheduled_for=missed).status == "success"
    assert Job.objects.get(pk="strict").next_run_at == T0.replace(microsecond=0) + timedelta(seconds=10)
    # The fires it stood for (10:00:34, :36, :38) are recorded, skipped with the reason.
    stood_for = [missed + timedelta(seconds=s) for s in (2, 4, 6)]
    for job_id in ("strict", "lenient"):
        runs = Run.objects.filter(job_id=job_id).exclude(scheduled_for=missed).order_by("scheduled_for")
        assert [(r.scheduled_for, r.status, r.error[:7]) for r in runs] == [
            (at, "skipped", "Missed:") for at in stood_for
        ]


def every_second_with_a_lead(make_beat, settings) -> tuple[CrontaskScheduler, list[Fire]]:
    """A job firing every second from T0, and a beat with a lead of 250 ms; (beat, what it publishes)."""
    settings.CRONTASK_FIRE_LEAD_MS = 250
    with time_machine.travel(T0, tick=False):
        services.job_create(data={"id": "sec", "cron": "* * * * * *", **HTTP})
    published: list[Fire] = []
    beat = make_beat()
    beat.publish = published.extend
    return beat, published


def test_beat_sends_a_fire_its_lead_ahead_and_wakes_a_lead_before_the_next(make_beat, settings):
    beat, published = every_second_with_a_lead(make_beat, settings)
    with time_machine.travel(T0 + timedelta(milliseconds=700), tick=False):
        assert beat.fire_due_jobs() == pytest.approx(0.05)  # wakes 0.25 s before 10:00:31
    assert published == []
    with time_machine.travel(T0 + timedelta(milliseconds=800), tick=False):
        beat.fire_due_jobs()
    assert [(f.job_id, f.scheduled_for) for f in published] == [("sec", T0 + timedelta(seconds=1))]
    assert Job.objects.get(pk="sec").next_run_at == T0 + timedelta(seconds=2)


def test_a_late_beat_claiming_with_a_lead_skips_no_fire_still_to_come(make_beat, settings):
    """At 10:00:31.9 with a lead of 0.25 s, the 10:00:31 fire is due and 10:00:32 is in the lead:
    both go out, one after the other; 10:00:32 is not taken as missed."""
    beat, published = every_second_with_a_lead(make_beat, settings)
    with time_machine.travel(T0 + timedelta(milliseconds=1900), tick=False):
        assert beat.fire_due_jobs() == 0.0
        beat.fire_due_jobs()
    assert [f.scheduled_for for f in published] == [T0 + timedelta(seconds=1), T0 + timedelta(seconds=2)]
    assert Job.objects.get(pk="sec").next_run_at == T0 + timedelta(seconds=3)


def test_http_fires_due_at_different_times_go_in_different_batches(settings):
    from scheduling.fires import Fire

    at = T0.replace(microsecond=0)
    fires = [Fire(job_id=f"h{i:02d}", scheduled_for=at + timedelta(seconds=i % 2), kind="http") for i in range(8)]
    messages = published(fires, 20, settings)
    assert [task for task, _ in messages] == ["runs.tasks.execute_fires"] * 2
    for _, kwargs in messages:
        assert len(kwargs["fires"]) == 4
        assert len({when for _, when in kwargs["fires"]}) == 1


def test_beats_walk_right_after_fires_claimed_ahead_repairs_nothing(make_beat, settings, caplog):
    """The walk reads next_run_at at beat's horizon: a fire claimed within the lead is not taken
    for a fire skipped, which would move it back and send it twice."""
    settings.CRONTASK_FIRE_LEAD_MS = 250
    with time_machine.travel(T0, tick=False):
        services.job_create(data={"id": "cron", "cron": "*/10 * * * * *", **HTTP})
        services.job_create(data={"id": "every", "interval_seconds": 10, **HTTP})
        services.job_create(data={"id": "once", "run_at": (T0 + timedelta(seconds=10)).isoformat(), **HTTP})
    published: list[Fire] = []
    beat = make_beat()
    beat.publish = published.extend
    with time_machine.travel(T0 + timedelta(milliseconds=9800), tick=False):
        beat.fire_due_jobs()  # claims 10:00:40 ahead, then takes the first step of a walk (every job)
    with time_machine.travel(T0 + timedelta(milliseconds=9900), tick=False):
        beat.fire_due_jobs()
    fire = T0 + timedelta(seconds=10)
    assert sorted((f.job_id, f.scheduled_for) for f in published) == [("cron", fire), ("every", fire), ("once", fire)]
    assert dict(Job.objects.values_list("id", "next_run_at")) == {
        "cron": fire + timedelta(seconds=10),
        "every": fire + timedelta(seconds=10),
        "once": None,
    }
    assert "changed around the services" not in caplog.text


def test_its_banner_names_the_sleep_it_keeps(make_beat, settings):
    """celery beat prints the scheduler's ``max_interval`` as "maxinterval": the half second beat
    sleeps at most, not the stock 5 s."""
    assert make_beat().max_interval == settings.CRONTASK_SCHEDULER_MAX_SLEEP == 0.5


@pytest.mark.skipif(connection.vendor != "postgresql", reason="reads PostgreSQL's plan")
def test_beats_reload_after_a_change_reads_the_tasks_that_are_not_a_jobs_by_their_index(make_beat):
    """Each change to a job makes beat reload its own tasks (a handful): not a read of the whole
    PeriodicTask table, one row a job (300 ms of the database at 1,000,000 jobs)."""
    sql, params = make_beat().enabled_models_qs().query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")  # the table is small here: as it is when it is big
        cursor.execute(f"EXPLAIN {sql}", params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "jobs_periodictask_not_job_idx" in plan
