"""``GET /metrics``' content: the counts every process keeps (``core.metrics``), added up across
processes, and the state read at each scrape from the database and the broker.

- ``registry()``: what one scrape reads. A registry of its own per scrape, not prometheus_client's
  global one: the files of every process (``MultiProcessCollector``) plus ``StateCollector``, whose
  gauges are read once per scrape and never stored in the files (stored, each process would add
  its own copy of the same number).
- ``run_ended``: told of every run that ends (``runs.watchers``), it counts the run once the
  transaction that stored its outcome commits: an outcome rolled back is not counted.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from celery import current_app
from django.conf import settings
from django.db import transaction
from django.db.models import Count, Q
from django.utils import timezone
from kombu.transport import virtual
from prometheus_client import CollectorRegistry, Metric
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from core import metrics
from heartbeats.models import Heartbeat
from heartbeats.services import BEAT, WORKER_PREFIX
from jobs.models import Job
from monitoring.health import BROKER_TIMEOUT_SECONDS, STALE_AFTER
from runs.models import Run

logger = logging.getLogger(__name__)

# A worker whose heartbeat is older than this is left out of crontask_worker_heartbeat_age_seconds:
# long enough for an alert on its age to fire (STALE_AFTER is a minute), short enough that the
# workers of containers replaced by a deployment do not linger as series.
WORKER_SHOWN_FOR = timedelta(minutes=15)


def registry() -> CollectorRegistry:
    """What one scrape reads: every process's counts and the state as it is now."""
    made = CollectorRegistry(auto_describe=False)  # registering asks nothing of the collectors
    MultiProcessCollector(made, path=str(metrics.directory()))
    made.register(StateCollector())
    return made


def run_ended(run: Run, job: Job, final: bool) -> None:
    """A ``runs.watchers`` watcher (without a savepoint: it writes nothing): count ``run`` once the
    transaction that ended it commits."""
    started = run.status != Run.Status.SKIPPED and run.started_at is not None
    duration = run.duration_ms / 1000 if started and run.duration_ms is not None else None
    lateness = None
    if started and run.trigger == Run.Trigger.SCHEDULED and run.attempt == 1 and run.scheduled_for is not None:
        lateness = (run.started_at - run.scheduled_for).total_seconds()  # type: ignore[operator]  # started: not None
    count = partial(
        metrics.count_run, kind=job.kind, trigger=run.trigger, status=run.status, job_id=job.pk,
        duration=duration, lateness=lateness,
    )  # fmt: skip
    transaction.on_commit(count, robust=True)  # a metric that fails never fails the run's commit


class StateCollector(Collector):
    """Gauges read at each scrape: jobs by status, runs going, heartbeat ages, the queue's depth.

    Each part is read on its own (one query each, the queue by one broker connection); a part
    that cannot be read (the database or the broker is down) is left out of the scrape, logged,
    and the others are still answered: a scrape never fails for it."""

    def collect(self) -> Iterable[Metric]:
        now = timezone.now()
        parts: list[Callable[[datetime], Sequence[Metric]]] = [_jobs, _runs, _heartbeats, _queue]
        for part in parts:
            try:
                yield from part(now)
            except Exception as exc:  # noqa: BLE001 - whatever it is, the other parts are still read
                logger.warning("metrics: could not read %s: %s", part.__name__.lstrip("_"), exc)


def _jobs(now: datetime) -> Sequence[Metric]:
    counts = dict(Job.objects.order_by().values_list("status").annotate(n=Count("pk")))
    family = GaugeMetricFamily("crontask_jobs", "Jobs, by status.", labels=["status"])
    for status in Job.Status.values:
        family.add_metric([status], counts.get(status, 0))
    return [family]


def _runs(now: datetime) -> Sequence[Metric]:
    # Only the running and queued runs are read (run_status_idx): without the WHERE, the FILTERs
    # counted by reading every run's entry, 1.7 s a scrape at 10,000,000 runs.
    going = Run.objects.filter(status__in=(Run.Status.RUNNING, Run.Status.QUEUED))
    counts = going.aggregate(
        running=Count("pk", filter=Q(status=Run.Status.RUNNING)), queued=Count("pk", filter=Q(status=Run.Status.QUEUED))
    )
    return [
        GaugeMetricFamily("crontask_runs_running", "Runs running now.", value=counts["running"]),
        GaugeMetricFamily(
            "crontask_runs_queued", "Runs queued now: waiting for a worker, or taken ahead of their time.",
            value=counts["queued"],
        ),
    ]  # fmt: skip


def _heartbeats(now: datetime) -> Sequence[Metric]:
    rows = Heartbeat.objects.filter(
        Q(name=BEAT) | Q(name__startswith=WORKER_PREFIX, seen_at__gte=now - WORKER_SHOWN_FOR)
    ).values_list("name", "hostname", "seen_at")
    beat = GaugeMetricFamily("crontask_beat_heartbeat_age_seconds", "Seconds since beat's last heartbeat.")
    workers = GaugeMetricFamily(
        "crontask_worker_heartbeat_age_seconds",
        "Seconds since each worker's last heartbeat (workers heard from in the last 15 minutes).",
        labels=["worker"],
    )
    alive = 0
    for name, hostname, seen_at in rows:
        age = max(0.0, (now - seen_at).total_seconds())
        if name == BEAT:
            beat.add_metric([], age)
        else:
            workers.add_metric([hostname or name.removeprefix(WORKER_PREFIX)], age)
            alive += now - seen_at < STALE_AFTER
    up = GaugeMetricFamily("crontask_workers_up", "Workers with a heartbeat in the last minute.", value=alive)
    return [family for family in (beat, workers) if family.samples] + [up]


def _queue(now: datetime) -> Sequence[Metric]:
    queue = settings.CELERY_TASK_DEFAULT_QUEUE
    depth = queue_depth(queue)
    if depth is None:
        return []
    family = GaugeMetricFamily(
        "crontask_queue_depth", "Messages waiting in the broker's queue (not those a worker holds).", labels=["queue"]
    )
    family.add_metric([queue], depth)
    return [family]


def queue_depth(queue: str, *, url: str | None = None, options: dict[str, Any] | None = None) -> int | None:
    """How many messages wait in ``queue``, asked of the broker with one bounded connection attempt;
    None when it cannot tell (it is down; an AMQP queue that does not exist yet).

    Through kombu's queue declaration, which answers with the count on every transport: Redis adds
    up the queue's lists (LLEN), the filesystem broker counts its files, RabbitMQ answers a passive
    declaration (which creates nothing, and leaves a queue declared with other arguments alone)."""
    app = current_app
    url = url or str(app.conf.broker_url)
    options = dict(app.conf.broker_transport_options if options is None else options)
    if url.startswith(("redis://", "rediss://")):
        options |= {"socket_connect_timeout": BROKER_TIMEOUT_SECONDS, "socket_timeout": BROKER_TIMEOUT_SECONDS}
    try:
        with app.connection_for_write(url, connect_timeout=BROKER_TIMEOUT_SECONDS, transport_options=options) as conn:
            conn.ensure_connection(max_retries=0, timeout=BROKER_TIMEOUT_SECONDS)  # type: ignore[arg-type]
            channel: Any = conn.default_channel  # kombu's channel; celery-types' StdChannel names less
            # A virtual transport (Redis, filesystem) declares nothing for real, and refuses a passive
            # declaration of an empty Redis queue (no list left): ask it plainly.
            declared = channel.queue_declare(queue=queue, passive=not isinstance(channel, virtual.Channel))
            return int(declared.message_count)
    except Exception as exc:  # noqa: BLE001 - the broker cannot tell now: the sample is left out
        logger.info("metrics: the broker did not tell the depth of queue %s: %s", queue, exc)
        return None
