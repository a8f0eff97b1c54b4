"""Nothing is lost: a notification whose message was lost is queued again by the sweep, a second
copy of a message does nothing, and the sweep is done by one process per turn, in every worker
and in beat."""

from __future__ import annotations

import os
import time
from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from alerts import delivery, services
from alerts.sweep import sweep
from alerts.worker import SWEEP_TURN, AlertSweepStep, sweep_if_my_turn
from crontask.celery import app
from heartbeats.models import Heartbeat
from heartbeats.services import take_turn

pytestmark = pytest.mark.django_db


@pytest.fixture
def slack(receiver):
    return services.channel_create(data={"name": "ops", "kind": "slack", "target": receiver.url + "/slack"})


def test_a_notification_whose_message_was_lost_is_queued_again_and_sent_once(
    receiver, eager, slack, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False):  # the broker lost it: never delivered
        notification = delivery.notify(slack, "failed", "it broke")
    with django_capture_on_commit_callbacks(execute=True):
        assert sweep(now=timezone.now() + timedelta(seconds=30)).requeued == 0  # not overdue yet
    assert receiver.hits["/slack"] == 0
    later = timezone.now() + timedelta(seconds=delivery.LOST_AFTER_SECONDS + 5)
    with time_machine.travel(later, tick=False), django_capture_on_commit_callbacks(execute=True) as callbacks:
        assert sweep().requeued == 1
        assert sweep().requeued == 0  # taken: a second sweep leaves it
    assert len(callbacks) == 1
    notification.refresh_from_db()
    assert (notification.status, notification.attempts, notification.next_attempt_at) == ("sent", 1, None)
    assert receiver.hits["/slack"] == 1


def test_a_second_copy_of_a_message_finds_its_attempt_made(receiver, slack, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        notification = delivery.notify(slack, "failed", "it broke")
    assert len(callbacks) == 1
    assert delivery.deliver(notification.pk, attempt=1) is None
    assert delivery.deliver(notification.pk, attempt=1) is None  # a redelivered copy: attempt 1 was made
    assert receiver.hits["/slack"] == 1
    notification.refresh_from_db()
    assert (notification.status, notification.attempts) == ("sent", 1)


def test_the_next_attempt_is_named_and_a_late_copy_of_the_last_does_nothing(
    receiver, settings, django_capture_on_commit_callbacks
):
    settings.CRONTASK_ALERT_RETRY_BASE_SECONDS = 30
    down = services.channel_create(data={"name": "down", "kind": "slack", "target": receiver.url + "/flaky/9"})
    with django_capture_on_commit_callbacks(execute=False):
        notification = delivery.notify(down, "failed", "it broke")
    assert delivery.deliver(notification.pk, attempt=1) == delivery.Retry(wait=30, attempt=2)
    notification.refresh_from_db()
    assert notification.status == "pending"
    assert notification.next_attempt_at is not None
    wait = (notification.next_attempt_at - timezone.now()).total_seconds()
    assert 25 < wait <= 30
    assert delivery.deliver(notification.pk, attempt=1) is None  # late copy of the first
    assert delivery.deliver(notification.pk, attempt=2) == delivery.Retry(wait=60, attempt=3)
    assert receiver.hits["/flaky/9"] == 2


def test_a_slow_attempt_the_sweep_gave_up_on_is_still_recorded_if_the_next_has_not_begun(
    receiver, slack, django_capture_on_commit_callbacks, monkeypatch
):
    with django_capture_on_commit_callbacks(execute=False):
        notification = delivery.notify(slack, "failed", "it broke")
    sent = delivery.channels.send
    overdue = timedelta(seconds=delivery.attempt_hold_seconds() + delivery.LOST_AFTER_SECONDS + 1)

    def slow_send(channel, alert):  # so slow that the sweep queues the next attempt meanwhile
        with (
            time_machine.travel(timezone.now() + overdue, tick=False),
            django_capture_on_commit_callbacks(execute=False) as requeued,
        ):
            assert sweep().requeued == 1
        assert len(requeued) == 1
        sent(channel, alert)

    monkeypatch.setattr(delivery.channels, "send", slow_send)
    assert delivery.deliver(notification.pk, attempt=1) is None
    monkeypatch.setattr(delivery.channels, "send", sent)
    assert delivery.deliver(notification.pk, attempt=2) is None  # the queued one finds it sent
    notification.refresh_from_db()
    assert (notification.status, notification.attempts) == ("sent", 1)
    assert receiver.hits["/slack"] == 1


def test_a_slow_attempt_overtaken_by_the_next_leaves_the_outcome_to_it(
    receiver, slack, django_capture_on_commit_callbacks, monkeypatch
):
    with django_capture_on_commit_callbacks(execute=False):
        notification = delivery.notify(slack, "failed", "it broke")
    sent = delivery.channels.send

    def overtaken(channel, alert):  # the next attempt begins and ends while this one hangs
        monkeypatch.setattr(delivery.channels, "send", sent)
        assert delivery.deliver(notification.pk, attempt=2) is None
        raise delivery.channels.DeliveryFailed("timed out")

    monkeypatch.setattr(delivery.channels, "send", overtaken)
    assert delivery.deliver(notification.pk, attempt=1) is None  # its failure is not stored over the success
    notification.refresh_from_db()
    assert (notification.status, notification.attempts, notification.error) == ("sent", 2, "")


def test_one_process_takes_each_turn():
    now = timezone.now()
    assert take_turn("alerts-sweep", every=10, now=now)
    assert not take_turn("alerts-sweep", every=10, now=now + timedelta(seconds=5))
    assert take_turn("alerts-sweep", every=10, now=now + timedelta(seconds=10))
    assert Heartbeat.objects.get(name="alerts-sweep").seen_at == now + timedelta(seconds=10)


def test_the_sweep_is_skipped_when_another_process_just_did_it(settings, monkeypatch):
    done = []

    def counted_sweep():
        done.append(1)
        return sweep()

    monkeypatch.setattr("alerts.sweep.sweep", counted_sweep)
    sweep_if_my_turn()
    sweep_if_my_turn()
    assert done == [1]
    assert Heartbeat.objects.filter(name=SWEEP_TURN).exists()


def test_every_worker_sweeps():
    assert AlertSweepStep in app.steps["consumer"]


@pytest.mark.django_db(transaction=True)
def test_beat_sweeps_from_its_own_thread_until_it_closes(make_beat, settings):
    settings.CRONTASK_ALERT_SWEEP_SECONDS = 1
    scheduler = make_beat()
    scheduler.setup_schedule()
    sweeper = scheduler._alert_sweeper
    assert sweeper is not None
    assert sweeper.running
    deadline = time.monotonic() + 10
    while not Heartbeat.objects.filter(name=SWEEP_TURN).exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert Heartbeat.objects.get(name=SWEEP_TURN).pid == os.getpid()
    scheduler.close()
    assert not sweeper.running
    assert scheduler._alert_sweeper is None
