"""Recording heartbeats: beat writes ``beat`` every few seconds (``crontask.scheduler``), each worker
``worker:<nodename>`` every ``WORKER_HEARTBEAT_SECONDS`` (``heartbeats.worker``). Reading them is
``monitoring.health``'s."""

from __future__ import annotations

import hashlib
import os
import socket
from datetime import datetime, timedelta

from django.db import IntegrityError, transaction
from django.utils import timezone

from heartbeats.models import Heartbeat

BEAT = "beat"
WORKER_PREFIX = "worker:"
WORKER_HEARTBEAT_SECONDS = 10.0
# A worker that stopped without saying so (killed, its host lost) leaves its row; workers delete
# rows this old when they start, so the table does not grow with every container ever run.
WORKER_FORGET_AFTER = timedelta(days=1)


def record_heartbeat(name: str, *, hostname: str | None = None, now: datetime | None = None) -> None:
    """Write a process's sign of life: one UPDATE (an INSERT the first time)."""
    values = {"hostname": hostname or socket.gethostname(), "pid": os.getpid(), "seen_at": now or timezone.now()}
    if Heartbeat.objects.filter(name=name).update(**values):
        return
    try:
        with transaction.atomic():
            Heartbeat.objects.create(name=name, **values)
    except IntegrityError:  # a process of the same name (a restart) inserted it meanwhile
        Heartbeat.objects.filter(name=name).update(**values)


def forget_heartbeat(name: str) -> None:
    Heartbeat.objects.filter(name=name).delete()


def forget_stale_workers(*, now: datetime | None = None) -> int:
    cutoff = (now or timezone.now()) - WORKER_FORGET_AFTER
    deleted, _ = Heartbeat.objects.filter(name__startswith=WORKER_PREFIX, seen_at__lt=cutoff).delete()
    return deleted


def worker_heartbeat_name(nodename: str) -> str:
    """``worker:<nodename>``, or a digest of the node name when that is too long for the key (the
    node name itself is kept in ``hostname``)."""
    name = WORKER_PREFIX + nodename
    max_length = Heartbeat._meta.get_field("name").max_length or 50
    if len(name) <= max_length:
        return name
    return WORKER_PREFIX + hashlib.sha256(nodename.encode()).hexdigest()[: max_length - len(WORKER_PREFIX)]


def take_turn(name: str, *, every: float, now: datetime | None = None) -> bool:
    """True for one caller per ``every`` seconds among every process that asks by this ``name``
    (the alert sweep, done by whichever worker or beat asks first): a conditional UPDATE of the
    row, so of two processes asking at once one wins. The row then says when it was last done."""
    now = now or timezone.now()
    values = {"hostname": socket.gethostname(), "pid": os.getpid(), "seen_at": now}
    if Heartbeat.objects.filter(name=name, seen_at__lte=now - timedelta(seconds=every)).update(**values):
        return True
    if Heartbeat.objects.filter(name=name).exists():
        return False  # done less than ``every`` seconds ago
    try:
        with transaction.atomic():
            Heartbeat.objects.create(name=name, **values)
    except IntegrityError:  # another process took the first turn meanwhile
        return False
    return True
