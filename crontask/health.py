"""Health of the parts: database, broker, beat (its heartbeat), workers (a control ping)."""

from __future__ import annotations

import os
import socket
from datetime import datetime, timedelta
from typing import Any

from django.db import connection
from django.utils import timezone

from crontask.celery import app
from crontask.models import Heartbeat

BEAT = "beat"
# Beat writes its heartbeat every few seconds; this much silence means it is down.
BEAT_STALE_AFTER = timedelta(seconds=60)


def record_heartbeat(name: str, *, now: datetime | None = None) -> None:
    Heartbeat.objects.update_or_create(
        name=name,
        defaults={"hostname": socket.gethostname(), "pid": os.getpid(), "seen_at": now or timezone.now()},
    )


def health_report(*, ping_timeout: float = 1.0) -> tuple[bool, dict[str, Any]]:
    """(all parts up, a report naming each part's state)."""
    parts = {
        "database": _database(),
        "broker": _broker(),
        "beat": _beat(),
        "workers": _workers(ping_timeout),
    }
    healthy = all(part["status"] == "ok" for part in parts.values())
    return healthy, {"status": "ok" if healthy else "error", **parts}


def _database() -> dict[str, Any]:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception as exc:  # noqa: BLE001 - any failure is "down"
        return {"status": "error", "error": type(exc).__name__}
    return {"status": "ok"}


def _broker() -> dict[str, Any]:
    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
    except Exception as exc:  # noqa: BLE001
        return {"status": "error", "error": type(exc).__name__}
    return {"status": "ok"}


def _beat() -> dict[str, Any]:
    try:
        beat = Heartbeat.objects.filter(name=BEAT).first()
    except Exception as exc:  # noqa: BLE001
        return {"status": "error", "error": type(exc).__name__}
    if beat is None:
        return {"status": "error", "error": "beat has never run", "last_seen": None}
    state = "ok" if timezone.now() - beat.seen_at <= BEAT_STALE_AFTER else "error"
    report = {"status": state, "last_seen": beat.seen_at.isoformat(), "hostname": beat.hostname}
    if state != "ok":
        report["error"] = "no heartbeat for over a minute"
    return report


def _workers(timeout: float) -> dict[str, Any]:
    try:
        replies = app.control.ping(timeout=timeout) or []
    except Exception as exc:  # noqa: BLE001
        return {"status": "error", "error": type(exc).__name__, "count": 0, "names": []}
    names = sorted(name for reply in replies for name in reply)
    if not names:
        return {"status": "error", "error": "no worker answered", "count": 0, "names": []}
    return {"status": "ok", "count": len(names), "names": names}
