"""Each worker records its heartbeat while its consumer takes messages (heartbeats.worker)."""

from __future__ import annotations

import logging
import time
from datetime import timedelta
from types import SimpleNamespace
from typing import cast

import pytest
from celery.worker.consumer import Consumer
from django.db import OperationalError, connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from crontask.celery import app
from heartbeats.models import Heartbeat
from heartbeats.services import WORKER_FORGET_AFTER, record_heartbeat, worker_heartbeat_name
from heartbeats.worker import WorkerHeartbeat, WorkerHeartbeatStep
from monitoring.health import health_report


def wait_for(predicate, timeout: float = 10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(0.05)
    return None


def test_the_step_is_part_of_every_workers_consumer():
    assert WorkerHeartbeatStep in app.steps["consumer"]
    # Once it takes messages. Celery resolves the names to step classes when a worker is built.
    required = [
        (step if isinstance(step, str) else str(step.name)).replace(":", ".")
        for step in WorkerHeartbeatStep.requires or ()
    ]
    assert required == ["celery.worker.consumer.tasks.Tasks"]


@pytest.mark.django_db
def test_a_beat_records_the_worker_and_the_next_costs_one_update():
    heartbeat = WorkerHeartbeat("celery@host-a", every=10)
    heartbeat.beat()
    row = Heartbeat.objects.get(name="worker:celery@host-a")
    assert row.hostname == "celery@host-a"
    first = row.seen_at
    with CaptureQueriesContext(connection) as queries:
        heartbeat.beat()
    assert len(queries) == 1
    assert queries[0]["sql"].startswith("UPDATE")
    assert Heartbeat.objects.get(name="worker:celery@host-a").seen_at > first
    assert health_report(show_hostnames=True)[1]["workers"] == {"status": "ok", "count": 1, "names": ["celery@host-a"]}


@pytest.mark.django_db
def test_a_node_name_too_long_for_the_key_is_kept_whole_beside_a_digest():
    nodename = "celery@" + "pod-" * 20
    WorkerHeartbeat(nodename, every=10).beat()
    (row,) = Heartbeat.objects.filter(name__startswith="worker:")
    assert len(row.name) <= 50
    assert row.name == worker_heartbeat_name(nodename)
    assert row.hostname == nodename


@pytest.mark.django_db
def test_a_database_error_is_logged_once_and_never_raised(monkeypatch, caplog):
    def down(*args, **kwargs):
        raise OperationalError("the database is away")

    monkeypatch.setattr("heartbeats.services.record_heartbeat", down)
    heartbeat = WorkerHeartbeat("celery@host-b", every=10)
    with caplog.at_level(logging.INFO, logger="crontask.heartbeat"):
        heartbeat.beat()
        heartbeat.beat()
        monkeypatch.undo()
        heartbeat.beat()
    assert [r.levelname for r in caplog.records] == ["WARNING", "INFO"]
    assert Heartbeat.objects.filter(name="worker:celery@host-b").exists()


@pytest.mark.django_db(transaction=True)
def test_the_step_beats_while_started_and_deletes_its_row_on_a_clean_shutdown():
    long_gone = timezone.now() - WORKER_FORGET_AFTER - timedelta(minutes=1)
    record_heartbeat(worker_heartbeat_name("celery@long-gone"), hostname="celery@long-gone", now=long_gone)
    consumer = cast(Consumer, SimpleNamespace(hostname="celery@host-c"))  # the step reads only its hostname
    step = WorkerHeartbeatStep(consumer)
    step.start(consumer)
    try:
        assert wait_for(lambda: Heartbeat.objects.filter(name="worker:celery@host-c").exists())
        assert wait_for(lambda: not Heartbeat.objects.filter(hostname="celery@long-gone").exists())
    finally:
        step.stop(consumer)  # the broker connection was lost: the row stays and goes stale
    assert step.heartbeat is not None
    assert not step.heartbeat.running
    assert Heartbeat.objects.filter(name="worker:celery@host-c").exists()
    step.start(consumer)  # reconnected
    step.shutdown(consumer)
    assert not Heartbeat.objects.filter(name="worker:celery@host-c").exists()
