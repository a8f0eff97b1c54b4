"""The database is the record, the broker only the carrier: every run is a row before its message
is sent, and beat sends again what the broker could not take or may have lost (scheduling.outbox)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from kombu.exceptions import OperationalError as BrokerDown

from jobs import services as job_services
from runs import reaper
from runs.models import Run
from runs.tasks import execute_job
from scheduling import outbox
from scheduling.fires import Fire

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 3, 2, 10, 0, 30, tzinfo=UTC)
FIRE = T0 + timedelta(seconds=10)  # the first fire of a 10 s interval job created at T0
HTTP = {"url": "http://127.0.0.1:9/"}


def make_job(job_id: str = "j", every: int = 10, **extra):
    with time_machine.travel(T0, tick=False):
        return job_services.job_create(data={"id": job_id, "interval_seconds": every, **HTTP, **extra})


class Broker:
    """Stands in for beat's publish: records what is sent, or refuses while ``down``."""

    def __init__(self) -> None:
        self.down = False
        self.sent: list[Fire] = []
        self.queued_when_sent: list[tuple[str, str, object]] = []

    def publish(self, fires) -> None:
        if self.down:
            raise BrokerDown("Error 111 connecting to 127.0.0.1:6379. Connection refused.")
        # what the worker will find when the message arrives
        self.queued_when_sent += [
            (run.job_id, run.status, run.sent_at)
            for fire in fires
            for run in Run.objects.filter(job_id=fire.job_id, scheduled_for=fire.scheduled_for)
        ]
        self.sent += fires


@pytest.fixture
def beat(make_beat):
    broker = Broker()
    scheduler = make_beat()
    scheduler.publish = broker.publish
    scheduler.broker_stub = broker
    return scheduler


def tick(scheduler, at: datetime) -> None:
    """Beat's tick at ``at``; its own waits (monotonic: the broker's backoff, the look for waiting
    runs every few seconds) are taken as over, as they would be between fires seconds apart."""
    scheduler.broker.next_attempt = scheduler._waiting_next = 0.0
    with time_machine.travel(at, tick=False):
        scheduler.fire_due_jobs()


def test_beat_records_each_fire_as_a_queued_run_before_it_sends_it(beat):
    make_job()
    tick(beat, FIRE + timedelta(milliseconds=5))
    assert [(f.job_id, f.scheduled_for) for f in beat.broker_stub.sent] == [("j", FIRE)]
    # committed before it was sent, with the time it is sent at (cleared if it cannot be) and its target
    assert beat.broker_stub.queued_when_sent == [("j", "queued", FIRE + timedelta(milliseconds=5))]
    run = Run.objects.get()
    assert (run.trigger, run.scheduled_for, run.attempt, run.status, run.worker) == ("scheduled", FIRE, 1, "queued", "")
    assert run.target == "GET http://127.0.0.1:9/"


def test_the_worker_takes_the_run_beat_recorded_and_makes_no_other(beat, http_target):
    make_job(url=f"{http_target.url}/ok")
    tick(beat, FIRE)
    recorded = Run.objects.get()
    execute_job.apply(kwargs={"job_id": "j", "scheduled_for": FIRE.isoformat()}, throw=True)
    execute_job.apply(kwargs={"job_id": "j", "scheduled_for": FIRE.isoformat()}, throw=True)  # delivered twice
    run = Run.objects.get()
    assert (run.pk, run.status, run.target) == (recorded.pk, "success", f"GET {http_target.url}/ok")
    assert http_target.hits["/ok"] == 1


def test_fires_beat_cannot_send_wait_as_queued_runs_and_go_once_the_broker_is_back(beat, caplog):
    caplog.set_level(logging.INFO, logger="scheduling.scheduler")
    make_job()
    beat.broker_stub.down = True
    for n in range(4):  # four fires while the broker is down: beat claims each one on time
        tick(beat, FIRE + timedelta(seconds=10 * n, milliseconds=5))
    waiting = list(Run.objects.order_by("scheduled_for").values_list("scheduled_for", "status", "sent_at"))
    assert waiting == [(FIRE + timedelta(seconds=10 * n), "queued", None) for n in range(4)]
    assert [r.message for r in caplog.records if r.levelno >= logging.ERROR] == [
        "broker unreachable: OperationalError: Error 111 connecting to 127.0.0.1:6379. Connection refused.; "
        "fires are recorded as queued runs and sent when it is back"
    ]  # once for the outage, not once per tick

    beat.broker_stub.down = False
    back = FIRE + timedelta(seconds=40, milliseconds=5)
    tick(beat, back)
    # The job runs once, for its latest fire; the four it stands for are skipped with the reason.
    assert [f.scheduled_for for f in beat.broker_stub.sent] == [FIRE + timedelta(seconds=40)]
    runs = list(Run.objects.order_by("scheduled_for").values_list("status", "error", "sent_at"))
    assert [status for status, _, _ in runs] == ["skipped"] * 4 + ["queued"]
    assert all(error.startswith("Missed: its message could not reach a worker in time") for _, error, _ in runs[:4])
    assert runs[-1][2] == back
    assert "broker is back after" in caplog.text
    assert "skipped 4 fire(s) whose message could not reach a worker in time" in caplog.text


def test_a_fire_that_waited_out_an_outage_alone_is_sent_when_the_broker_is_back(beat):
    make_job(every=3600)
    beat.broker_stub.down = True
    tick(beat, T0 + timedelta(hours=1))
    beat.broker_stub.down = False
    tick(beat, T0 + timedelta(hours=1, seconds=30))
    assert [f.scheduled_for for f in beat.broker_stub.sent] == [T0.replace(microsecond=0) + timedelta(hours=1)]
    assert Run.objects.get().status == "queued"  # sent, for a worker to take (and its misfire grace to judge)


def test_a_fire_the_broker_lost_is_sent_again(beat):
    make_job(every=10)
    tick(beat, FIRE)
    # Redis restarted without persistence: the message is gone, and nothing claimed the run.
    Run.objects.filter(scheduled_for__gt=FIRE).delete()
    job_services.Job.objects.update(status="paused")  # no later fire: only this one is looked at
    tick(beat, FIRE + timedelta(seconds=5))
    assert len(beat.broker_stub.sent) == 1  # not yet: it may still be on its way
    resend_after = timedelta(seconds=reaper.settings.CRONTASK_LOST_GRACE_SECONDS / 2)
    tick(beat, FIRE + resend_after + timedelta(seconds=3))
    assert [f.scheduled_for for f in beat.broker_stub.sent] == [FIRE, FIRE]


def test_beat_sends_again_what_it_sent_before_an_outage_at_once(beat):
    make_job("a", every=60)
    first = T0.replace(microsecond=0) + timedelta(seconds=60)
    tick(beat, first)  # sent
    with time_machine.travel(T0 + timedelta(seconds=5), tick=False):
        job_services.job_create(data={"id": "b", "interval_seconds": 60, **HTTP})
    beat.broker_stub.down = True
    tick(beat, first + timedelta(seconds=5))  # b's fire cannot be sent: beat sees the outage
    beat.broker_stub.down = False
    tick(beat, first + timedelta(seconds=8))  # back: the queue it had may be lost, a's message with it
    sent = sorted((f.job_id, f.scheduled_for) for f in beat.broker_stub.sent)
    assert sent == [("a", first), ("a", first), ("b", first + timedelta(seconds=5))]


def test_which_runs_wait_for_a_message():
    job = make_job()
    now = T0 + timedelta(minutes=5)

    def run(**fields):
        return Run.objects.create(
            **{"job": job, "trigger": "manual", "status": "queued", "queued_at": now, **fields}
        ).pk

    unsent = run(queued_at=now - timedelta(seconds=3))
    just_made = run()  # its own process is sending it
    sent_long_ago = run(queued_at=now - timedelta(minutes=1), sent_at=now - timedelta(seconds=31))
    sent_before_outage = run(queued_at=now - timedelta(seconds=20), sent_at=now - timedelta(seconds=20))
    run(queued_at=now - timedelta(seconds=20), sent_at=now - timedelta(seconds=8))  # sent after it
    run(queued_at=now - timedelta(minutes=1), worker="w pid=1")  # claimed: its worker holds it
    # sent again 1 min ago after waiting 9: the next time is once it has waited 9 more (a backlog)
    resent_recently = run(queued_at=now - timedelta(minutes=10), sent_at=now - timedelta(minutes=1))
    resent_long_ago = run(queued_at=now - timedelta(minutes=20), sent_at=now - timedelta(minutes=11))
    run(queued_at=now + timedelta(seconds=30))  # a retry, not due yet
    Run.objects.create(job=job, trigger="manual", status="success", queued_at=now - timedelta(minutes=1))

    def waiting(lost_before=None):
        return {r.pk for r in outbox.waiting_runs(now=now, resend_after=30, lost_before=lost_before)}

    assert waiting() == {unsent, sent_long_ago, resent_long_ago}
    assert resent_recently not in waiting()
    everything_sent_before_an_outage = {unsent, sent_long_ago, resent_long_ago, resent_recently, sent_before_outage}
    assert waiting(lost_before=now - timedelta(seconds=10)) == everything_sent_before_an_outage
    assert just_made not in waiting(lost_before=now)


def test_a_manual_run_asked_for_while_the_broker_is_down_is_accepted_and_sent_later(api, monkeypatch, beat):
    from runs.tasks import execute_job as task

    def refuse(*args, **kwargs):
        raise BrokerDown("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    make_job()
    monkeypatch.setattr(task, "apply_async", refuse)
    response = api.post("/api/jobs/j/run/", {}, format="json")
    assert response.status_code == 202, response.content
    run = Run.objects.get(pk=response.json()["id"])
    assert (run.status, run.sent_at) == ("queued", None)
    assert run.queued_at is not None

    sent = []
    publisher = type("Publisher", (), {"publish_runs": lambda self, runs: sent.extend(runs), "close": lambda self: 0})()
    beat._publisher = publisher
    tick(beat, run.queued_at + timedelta(seconds=3))
    assert [(r.pk, r.fire) for r in sent] == [(run.pk, None)]  # by its id
    run.refresh_from_db()
    assert run.sent_at is not None


def test_a_fire_sent_again_by_its_id_keeps_the_rules_of_a_fire(http_target):
    make_job(url=f"{http_target.url}/late", misfire_grace_seconds=5)
    with time_machine.travel(FIRE, tick=False):
        outbox.record_fires([Fire("j", FIRE, "http")], now=FIRE)
    run = Run.objects.get()
    with time_machine.travel(FIRE + timedelta(seconds=30), tick=False):
        execute_job.apply(kwargs={"job_id": "j", "run_id": run.pk}, throw=True)
    run.refresh_from_db()
    assert (run.status, run.error[:8]) == ("skipped", "Misfire:")
    assert http_target.hits == {}


def test_forbid_does_not_count_a_recorded_fire_no_worker_has_taken(http_target):
    make_job(url=f"{http_target.url}/solo", concurrency_policy="forbid")
    later = FIRE + timedelta(seconds=10)
    outbox.record_fires([Fire("j", FIRE, "http"), Fire("j", later, "http")], now=FIRE)
    execute_job.apply(kwargs={"job_id": "j", "scheduled_for": FIRE.isoformat()}, throw=True)
    statuses = dict(Run.objects.values_list("scheduled_for", "status"))
    assert statuses == {FIRE: "success", later: "queued"}


def test_the_reaper_leaves_a_recorded_fire_to_be_sent_again_and_reaps_one_a_dead_worker_held(settings):
    job = make_job()
    waiting_fire, held_fire = FIRE, FIRE + timedelta(seconds=10)
    outbox.record_fires([Fire("j", waiting_fire, "http"), Fire("j", held_fire, "http")], now=FIRE)
    Run.objects.filter(scheduled_for=held_fire).update(worker="w pid=1", celery_task_id="t")
    later = held_fire + timedelta(seconds=job.timeout_seconds + settings.CRONTASK_LOST_GRACE_SECONDS + 1)
    assert reaper.reap_lost_runs(now=later) == 1
    assert dict(Run.objects.filter(job=job).values_list("scheduled_for", "status")) == {
        waiting_fire: "queued",
        held_fire: "lost",
    }


def test_fires_a_beat_missed_while_it_could_not_fire_are_recorded_as_skipped(beat, caplog):
    make_job()
    # Beat comes back 35 s after the first fire was due: the fire at 10:00:40 stands for the
    # two that fell due since, which are recorded with the reason; the next is at 10:01:20.
    tick(beat, FIRE + timedelta(seconds=35))
    assert [(f.job_id, f.scheduled_for) for f in beat.broker_stub.sent] == [("j", FIRE)]
    runs = list(Run.objects.order_by("scheduled_for").values_list("scheduled_for", "status", "error"))
    reason = f"the fire at {FIRE.isoformat()} stands for it."
    assert [(at, status) for at, status, _ in runs] == [
        (FIRE, "queued"),
        (FIRE + timedelta(seconds=10), "skipped"),
        (FIRE + timedelta(seconds=20), "skipped"),
        (FIRE + timedelta(seconds=30), "skipped"),
    ]
    assert all(error.startswith("Missed: it fell due while beat could not fire jobs") for *_, error in runs[1:])
    assert all(error.endswith(reason) for *_, error in runs[1:])
    assert job_services.Job.objects.get().next_run_at == FIRE + timedelta(seconds=40)
    assert "3 fire(s) from" in caplog.text


def test_a_long_absence_records_the_latest_missed_fires_only():
    from jobs.triggers import Schedule

    every_second = Schedule(trigger="cron", cron="* * * * * *")
    missed = every_second.missed(T0, T0 + timedelta(hours=1), limit=100)
    assert len(missed) == 100
    assert missed[-1] == T0 + timedelta(hours=1)
    interval = Schedule(trigger="interval", interval_seconds=10)
    assert interval.missed(T0, T0 + timedelta(seconds=35), limit=100) == [
        T0 + timedelta(seconds=s) for s in (10, 20, 30)
    ]
    assert interval.missed(T0, T0 + timedelta(seconds=35), limit=2) == [T0 + timedelta(seconds=s) for s in (20, 30)]
    assert interval.missed(T0, T0 + timedelta(seconds=9), limit=2) == []


def test_a_batch_left_with_no_http_fire_locks_no_run(django_assert_max_num_queries):
    from runs import claims
    from runs.claims import Claimant

    make_job()
    outbox.record_fires([Fire("j", FIRE, "http")], now=FIRE)
    with django_assert_max_num_queries(0):
        assert claims.claim_fires([], by=Claimant("w", "t", now=FIRE)) == []
    assert Run.objects.get().worker == ""


def test_fires_another_delivery_made_meanwhile_are_left_to_it_and_the_others_inserted():
    from runs import claims

    make_job("a")
    make_job("b")
    Run.objects.create(job_id="b", trigger="scheduled", scheduled_for=FIRE, status="running", worker="other pid=1")
    fresh = [
        Run(job_id=job_id, trigger="scheduled", scheduled_for=FIRE, attempt=1, status="running", worker="w pid=2")
        for job_id in ("a", "b")
    ]
    inserted = claims._insert_new(fresh)
    assert [run.job_id for run in inserted] == ["a"]
    assert dict(Run.objects.values_list("job_id", "worker")) == {"a": "w pid=2", "b": "other pid=1"}
