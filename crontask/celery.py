"""The Celery application. Worker: ``celery -A crontask worker``; beat: ``celery -A crontask beat``."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

from celery import Celery, Task
from celery.signals import task_postrun, task_prerun, worker_process_shutdown
from celery.worker.consumer import Consumer as CeleryConsumer
from kombu import Connection

from alerts.worker import AlertSweepStep
from core import broker, multiprocess
from heartbeats.worker import WorkerHeartbeatStep

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "crontask.settings")

broker.register()  # filesystem:// writes each message atomically; redis:// survives a lost connection
app = Celery("crontask")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
# Each worker records its heartbeat while it takes messages, for /api/health/ (heartbeats.worker).
app.steps["consumer"].add(WorkerHeartbeatStep)
# And sweeps the alerts (no_success, reminders; alerts.worker), as beat does, whichever asks first.
app.steps["consumer"].add(AlertSweepStep)


@task_prerun.connect
@task_postrun.connect
def close_old_database_connections(task: Task | None = None, **kwargs: Any) -> None:
    """Around each task, what Django does around each request: drop a connection that is broken
    or older than CONN_MAX_AGE, and check the others (CONN_HEALTH_CHECKS) before their next use.

    Celery's Django fixup would instead close every connection before and after every task
    (unless CELERY_DB_REUSE_MAX is set, which settings does): a new PostgreSQL connection per
    run, which cost a worker most of its time at 50 runs a second.
    """
    if task is not None and getattr(task.request, "is_eager", False):
        return  # run in the caller's process, inside its transaction: its connection is not ours
    from django.db import close_old_connections

    close_old_connections()


@worker_process_shutdown.connect
def forget_live_metrics(pid: int | None = None, **kwargs: Any) -> None:
    """A pool process is ending: its live gauges go (``core.multiprocess``); its counts stay."""
    multiprocess.mark_process_dead(pid or os.getpid())


class Consumer(CeleryConsumer):
    """The worker's consumer (CELERY_WORKER_CONSUMER), made to ride out broker outages.

    - It reconnects every 1 to 5 s for as long as the broker is away (Celery's own waits grow to
      30 s, and its default gives up after 100 attempts, which stops the worker): the worker
      takes messages again within 5 s of the broker's return.
    - Mingle and gossip are off (as ``--without-mingle --without-gossip``): they only share state
      between workers, which Crontask does not use, and on Redis they fail on reconnection
      (kombu issue #582). Remote control (``celery inspect ping``, the worker container's health check)
      stays; /api/health/ reads heartbeats instead (``heartbeats.worker``).
    - Losing a Redis connection while a task is running no longer stops the worker
      (``core.broker.RedisChannel``).
    """

    def __init__(
        self, on_task_request: Callable[..., Any], *, worker_options: Mapping[str, Any] | None = None, **kwargs: Any
    ) -> None:
        # Celery's worker passes every argument but the first by keyword (celery.worker.components).
        options = {**(worker_options or {}), "without_mingle": True, "without_gossip": True}
        super().__init__(on_task_request, worker_options=options, **kwargs)

    def ensure_connected(self, conn: Connection) -> Connection:
        conn.ensure_connection = partial(  # type: ignore[method-assign]
            conn.ensure_connection, interval_start=1, interval_step=1, interval_max=5
        )
        return super().ensure_connected(conn)
