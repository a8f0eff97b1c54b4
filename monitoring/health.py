"""Health of the parts: database, broker, beat and workers, from recorded heartbeats.

Beat records its heartbeat every few seconds (``CrontaskScheduler.heartbeat``), and each worker
every ``WORKER_HEARTBEAT_SECONDS`` while it is connected to the broker and taking messages
(``heartbeats.worker``). A report reads them in one query and makes no broadcast: asking the
workers (``app.control.ping``) took a second per request, so one client could hold a web
process. The broker is probed with one bounded connection attempt, at most once per
``BROKER_CHECK_SECONDS`` per web process (``BrokerProbe``).
"""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta
from typing import Any

from celery import current_app
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext

from heartbeats.models import Heartbeat
from heartbeats.services import BEAT, WORKER_PREFIX

# A process that has not written its heartbeat for this long is counted as down.
STALE_AFTER = timedelta(seconds=60)
BEAT_STALE_AFTER = STALE_AFTER
BROKER_CHECK_SECONDS = 5.0
BROKER_TIMEOUT_SECONDS = 1.0


def health_report(*, show_hostnames: bool = False) -> tuple[bool, dict[str, Any]]:
    """(all parts up, a report naming each part's state). Host and worker names only with
    ``show_hostnames`` (staff): the endpoint answers anyone, a load balancer included."""
    database, beat, workers = _from_heartbeats(show_hostnames=show_hostnames)
    parts = {"database": database, "broker": broker_probe.status(), "beat": beat, "workers": workers}
    healthy = all(part["status"] == "ok" for part in parts.values())
    return healthy, {"status": "ok" if healthy else "error", **parts}


def _from_heartbeats(*, show_hostnames: bool) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """The database, beat and workers entries, from one query (which is the database's check)."""
    now = timezone.now()
    fresh = now - STALE_AFTER
    try:
        rows = list(
            Heartbeat.objects.filter(Q(name=BEAT) | Q(name__startswith=WORKER_PREFIX, seen_at__gte=fresh))
            .order_by("hostname")
            .values_list("name", "hostname", "seen_at")
        )
    except Exception as exc:  # noqa: BLE001 - any failure means the database is down
        unknown = {"status": "error", "error": gettext("database unavailable")}
        return {"status": "error", "error": type(exc).__name__}, unknown, {**unknown, "count": 0}
    beat_row = next((row for row in rows if row[0] == BEAT), None)
    workers = [hostname for name, hostname, _ in rows if name != BEAT]
    return {"status": "ok"}, _beat(beat_row, fresh, show_hostnames), _workers(workers, show_hostnames)


def _beat(row: tuple[str, str, datetime] | None, fresh: datetime, show_hostnames: bool) -> dict[str, Any]:
    if row is None:
        return {"status": "error", "error": gettext("beat has never run"), "last_seen": None}
    _, hostname, seen_at = row
    report: dict[str, Any] = {"status": "ok" if seen_at >= fresh else "error", "last_seen": seen_at.isoformat()}
    if show_hostnames:
        report["hostname"] = hostname
    if report["status"] != "ok":
        report["error"] = gettext("no heartbeat for over a minute")
    return report


def _workers(names: list[str], show_hostnames: bool) -> dict[str, Any]:
    report: dict[str, Any] = {"status": "ok" if names else "error", "count": len(names)}
    if not names:
        report["error"] = gettext("no worker heartbeat in the last minute")
    if show_hostnames:
        report["names"] = names
    return report


class BrokerProbe:
    """Whether this process reaches the broker: one connection attempt bounded by
    ``BROKER_TIMEOUT_SECONDS``, at most once per ``BROKER_CHECK_SECONDS`` per broker URL.

    A request meanwhile gets the last answer, and while one thread probes the others do not wait
    for it (unless there is no answer yet): a flood of health requests opens no flood of broker
    connections, and a broker that does not answer holds up one request per interval, not each.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._answers: dict[str, tuple[float, dict[str, Any]]] = {}

    def status(self) -> dict[str, Any]:
        url = broker_url()
        last = self._answers.get(url)
        if last is not None and time.monotonic() - last[0] < BROKER_CHECK_SECONDS:
            return last[1]
        if last is not None:
            acquired = self._lock.acquire(blocking=False)
        else:
            acquired = self._lock.acquire(timeout=2 * BROKER_TIMEOUT_SECONDS)
        if not acquired:
            return last[1] if last is not None else {"status": "error", "error": "TimeoutError"}
        try:
            last = self._answers.get(url)
            if last is not None and time.monotonic() - last[0] < BROKER_CHECK_SECONDS:
                return last[1]  # another thread probed while this one waited
            answer = _probe_broker(url)
            self._answers[url] = (time.monotonic(), answer)
            return answer
        finally:
            self._lock.release()

    def forget(self) -> None:
        """Probe again at the next request (tests)."""
        self._answers.clear()


def broker_url() -> str:
    return str(current_app.conf.broker_url)


def _probe_broker(url: str) -> dict[str, Any]:
    # The process's Celery app (crontask.celery's), as current_app: an app never imports the
    # project package, which sits above it.
    app = current_app
    options = dict(app.conf.broker_transport_options or {})
    if url.startswith(("redis://", "rediss://")):
        options |= {"socket_connect_timeout": BROKER_TIMEOUT_SECONDS, "socket_timeout": BROKER_TIMEOUT_SECONDS}
    try:
        with app.connection_for_write(url, connect_timeout=BROKER_TIMEOUT_SECONDS, transport_options=options) as conn:
            # One attempt, no retry. kombu takes seconds as a float; celery-types says int.
            conn.ensure_connection(max_retries=0, timeout=BROKER_TIMEOUT_SECONDS)  # type: ignore[arg-type]
    except Exception as exc:  # noqa: BLE001 - any failure is "down"
        return {"status": "error", "error": type(exc).__name__}
    return {"status": "ok"}


broker_probe = BrokerProbe()
