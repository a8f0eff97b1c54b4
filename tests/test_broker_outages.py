"""The worker's side of a broker outage: it waits for the broker as long as it takes, tries again
every few seconds, and a Redis connection lost under a running task does not stop it."""

from __future__ import annotations

import uuid
from types import SimpleNamespace
from typing import cast

import pytest
from kombu import Connection, Exchange, Queue
from kombu.transport import virtual

from crontask.celery import Consumer, app
from tests.e2e.faults import RedisServer


def test_a_worker_waits_for_the_broker_as_long_as_it_takes():
    assert app.conf.worker_consumer == "crontask.celery:Consumer"
    assert app.conf.broker_connection_max_retries is None  # Celery's default, 100, stops the worker


def test_a_worker_tries_the_broker_again_every_one_to_five_seconds():
    asked = {}

    def ensure_connection(*args, **kwargs) -> SimpleNamespace:
        asked.update(kwargs)
        return conn

    conn = SimpleNamespace(ensure_connection=ensure_connection)
    consumer = object.__new__(Consumer)  # only what ensure_connected reads
    consumer.app, consumer.first_connection_attempt, consumer.broker_connection_retry_attempt = app, False, 0
    consumer.ensure_connected(cast(Connection, conn))
    assert (asked["interval_start"], asked["interval_step"], asked["interval_max"]) == (1, 1, 5)


def test_a_worker_shares_no_state_with_other_workers_over_the_broker():
    # Mingle and gossip fail on a Redis reconnection and share nothing Crontask uses; remote
    # control (celery inspect ping, the health check) stays.
    consumer = Consumer(lambda *args: None, app=app, controller=SimpleNamespace(use_eventloop=False, state=None))
    enabled = {
        name.rsplit(".", 1)[1]: getattr(step, "enabled", True) for name, step in consumer.blueprint.steps.items()
    }
    assert (enabled["Mingle"], enabled["Gossip"], enabled["Control"], enabled["Tasks"]) == (False, False, True, True)


@pytest.fixture
def redis_server(tmp_path):
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.kill()


def test_a_redis_connection_lost_under_an_unacknowledged_message_fails_as_a_lost_connection(redis_server):
    """What a worker goes through when Redis goes away while a task runs with acks_late. Celery
    "collects" the lost connection: the channel's close times out on the dead socket (Celery
    bounds it) and the transport's client is cleared. Then Celery closes the connection, which
    closes the channel again and restores the unacknowledged message, and the task acknowledges
    its message when it ends. kombu 5.7 raised AttributeError in both ("'NoneType' object has no
    attribute 'hostname'"), which stopped the worker; a connection error is what Celery and kombu
    expect there, and survive."""
    name = f"outage-{uuid.uuid4().hex[:8]}"
    queue = Queue(name, Exchange(name), routing_key=name)
    conn = Connection(redis_server.url)
    with conn.Producer() as producer:
        producer.publish({"hello": 1}, exchange=queue.exchange, routing_key=name, declare=[queue])
    channel = conn.default_channel
    assert isinstance(channel, virtual.Channel)  # kombu's Redis channel
    message = queue(channel).get(no_ack=False)  # delivered, not yet acknowledged
    assert message is not None
    errors = conn.connection_errors
    redis_server.kill()
    conn._do_close_transport()  # what collect() leaves when the channel's close timed out

    with pytest.raises(errors):
        channel.close()  # as Connection.close() does (it ignores connection errors)
    with pytest.raises(errors):
        message.ack()  # as the task does when it ends (kombu logs connection errors)
