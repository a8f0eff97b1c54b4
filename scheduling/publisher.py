"""Beat's publisher: the messages for the fires and queued runs beat sends, built and published in
batches on beat's own broker connection (``scheduling.scheduler`` decides what and when)."""

from __future__ import annotations

import contextlib
import logging
import math
import os
import socket
from collections import defaultdict
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any, cast

from celery import Celery
from django.conf import settings
from kombu import Connection, Producer
from kombu.common import maybe_declare
from kombu.exceptions import KombuError
from kombu.transport.base import StdChannel
from kombu.utils.uuid import uuid

from core import metrics
from jobs.beat_sync import EXECUTE_FIRES_TASK, EXECUTE_TASK
from jobs.models import Job
from scheduling.fires import Fire
from scheduling.outbox import WaitingRun

logger = logging.getLogger(__name__)


class FirePublisher:
    """Publishes the messages for claimed fires, a batch at a time.

    A fire goes out as ``execute_job(job_id, scheduled_for)``. The HTTP fires of a burst go out
    up to CRONTASK_FIRE_BATCH_SIZE to a message, ``execute_fires(fires=[[job_id,
    scheduled_for], ...])``, and a worker makes their calls at once: a run costs a few ms of
    worker CPU on its own, mostly Celery's and the database's, and a batch pays that once.

    ``Task.apply_async`` looks up a dozen configuration values per call, through Django's lazy
    settings: about 1 ms of CPU per message, 10 s for a burst of 10,000. Here the route is
    resolved once, each message is built by Celery's own ``as_task_v2`` (the same protocol-2
    message a worker expects), and a batch goes out through kombu's publish batch (one Redis
    pipeline; transports without batching publish one by one). Measured by ``bench/run``.

    Nothing here retries: a publish that fails raises, and beat (which recorded the fires as
    runs first) sends them again later on a new connection (``connect``).
    """

    def __init__(self, app: Celery, producer: Producer) -> None:
        self.app = app
        self.producer = producer
        self.queue = app.amqp.router.route({}, EXECUTE_TASK)["queue"]
        self.origin = f"beat{os.getpid()}@{socket.gethostname()}"
        self.batch_size = settings.CRONTASK_FIRE_BATCH_SIZE
        # Declared once here, not per message: kombu's declaration cache misses for this queue,
        # and on Redis each declaration is two round trips.
        maybe_declare(self.queue, cast(StdChannel, producer.channel))  # a Producer made on a connection has a channel

    @classmethod
    def connect(cls, app: Celery) -> FirePublisher:
        """A publisher on a new broker connection, made with one attempt: it raises at once (after
        the transport's connect timeout) if the broker cannot be reached, rather than waiting."""
        conn = app.connection_for_write()
        try:
            conn.ensure_connection(max_retries=0)
            return cls(app, conn.Producer(auto_declare=False))
        except BaseException:
            _release(conn)
            raise

    def close(self) -> None:
        if self.producer.connection is not None:
            _release(self.producer.connection)

    def publish(self, fires: Sequence[Fire]) -> None:
        if not fires:
            return
        with self.producer.batch(max_size=len(fires)):  # type: ignore[attr-defined]  # kombu 5.6; not in celery-types
            for task, kwargs in self.messages(fires):
                self.send(task, kwargs)
        metrics.count_fires_published(len(fires))
        logger.info(
            "fired %d job(s), due %s to %s",
            len(fires), fires[0].scheduled_for.isoformat(), fires[-1].scheduled_for.isoformat(),
            extra={"fires": len(fires)},
        )  # fmt: skip

    def publish_runs(self, runs: Sequence[WaitingRun]) -> None:
        """Send queued runs by their id (manual runs, retries): ``execute_job(job_id, run_id)``."""
        if not runs:
            return
        with self.producer.batch(max_size=len(runs)):  # type: ignore[attr-defined]  # kombu 5.6; not in celery-types
            for run in runs:
                self.send(EXECUTE_TASK, {"job_id": run.job_id, "run_id": run.pk})

    def messages(self, fires: Sequence[Fire]) -> Iterator[tuple[str, dict[str, Any]]]:
        """(task, kwargs) of each message for ``fires``: the HTTP fires due at the same time in
        batches (a worker starts a batch's calls together, at their time), the others alone."""
        due_together: dict[datetime, list[Fire]] = defaultdict(list)
        for fire in fires:
            if fire.kind == Job.Kind.HTTP and self.batch_size > 1:
                due_together[fire.scheduled_for].append(fire)
            else:
                yield EXECUTE_TASK, _alone(fire)
        for calls in due_together.values():
            # Spread evenly: 11 calls go as 6 + 5, not 10 + 1.
            count = math.ceil(len(calls) / self.batch_size)
            for i in range(count):
                batch = calls[i::count]
                if len(batch) == 1:
                    yield EXECUTE_TASK, _alone(batch[0])
                else:
                    yield EXECUTE_FIRES_TASK, {"fires": [[f.job_id, f.scheduled_for.isoformat()] for f in batch]}

    def send(self, task: str, kwargs: dict[str, Any]) -> None:
        task_id = uuid()
        message = self.app.amqp.as_task_v2(
            task_id, task, (), kwargs, origin=self.origin, argsrepr="()", kwargsrepr=repr(kwargs)
        )
        self.producer.publish(
            message.body,
            exchange="",  # straight to the queue: a named exchange costs a lookup per message on Redis
            routing_key=self.queue.name,
            serializer="json",
            headers=message.headers,
            **message.properties,
        )
        logger.debug("published %s %s", task, kwargs)


def _alone(fire: Fire) -> dict[str, Any]:
    """The kwargs of ``execute_job`` for one fire."""
    return {"job_id": fire.job_id, "scheduled_for": fire.scheduled_for.isoformat()}


def broker_errors(app: Celery) -> tuple[type[BaseException], ...]:
    """What a broker that is down, restarting or unreachable raises, on the app's transport."""
    conn = app.connection_for_write()  # not connected: only its transport's error classes are read
    return (KombuError, OSError, *conn.connection_errors, *conn.channel_errors)


def _release(conn: Connection) -> None:
    with contextlib.suppress(Exception):  # a connection to a broker that is gone may fail to close
        conn.release()
