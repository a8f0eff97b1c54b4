"""Notifications: recorded, queued once the caller's transaction commits, and delivered by a
Celery task (``alerts.tasks.deliver_notification``) with retries and a bounded backoff.

A broken channel never hurts the caller: ``notify`` only writes a row and queues a message after
commit (a broker that is down is logged, not raised), and each attempt's failure is recorded.

Nothing is lost: the row is the outbox. A pending notification names when its next attempt is
due (``next_attempt_at``); one whose message was lost (the broker down when it was queued, the
worker killed while sending) is queued again by the sweep (``requeue_lost``, ``alerts.sweep``)
once that time is well past. An attempt takes the notification by moving that time ahead, so a
second copy of the message finds it not due and does nothing.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, NamedTuple

from celery import Task, current_app
from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from alerts import channels, messages
from alerts.models import AlertRule, Channel, Incident, Notification
from alerts.secrets import mask_error
from core import metrics
from core.outage import describe

if TYPE_CHECKING:
    from jobs.models import Job
    from runs.models import Run

logger = logging.getLogger(__name__)
DELIVER_TASK = "alerts.tasks.deliver_notification"


# A pending notification whose attempt is this many seconds overdue lost its message: queued again.
LOST_AFTER_SECONDS = 60


class Retry(NamedTuple):
    """Another attempt is due: ``attempt``, in ``wait`` seconds."""

    wait: float
    attempt: int


def attempt_hold_seconds() -> float:
    """How long an attempt holds its notification before the sweep may take it for lost: a send
    makes several network operations (connecting, TLS, an SMTP conversation), each with up to
    CRONTASK_ALERT_TIMEOUT."""
    return max(120.0, settings.CRONTASK_ALERT_TIMEOUT * 6.0)


def notify(
    channel: Channel | int,
    event: str,
    message: str,
    *,
    job: Job | None = None,
    run: Run | None = None,
    rule: AlertRule | int | None = None,
    incident: Incident | None = None,
) -> Notification:
    """Record a notification of ``event`` to ``channel`` (or its id) and queue its delivery after commit."""
    notification = Notification.objects.create(
        channel_id=channel if isinstance(channel, int) else channel.pk,
        rule_id=rule if isinstance(rule, int) or rule is None else rule.pk,
        event=event,
        message=message,
        job=job,
        run=run,
        incident=incident,
        next_attempt_at=timezone.now(),
    )
    queue(notification.pk, attempt=1)
    return notification


def queue(notification_id: int, *, attempt: int) -> None:
    """Queue ``attempt`` at delivering a notification once the current transaction commits."""

    def send() -> None:
        try:
            deliver_task().apply_async(kwargs={"notification_id": notification_id, "attempt": attempt})
        except Exception as exc:  # noqa: BLE001 - whatever the transport raises, the caller goes on
            logger.warning(
                "notification %s is recorded but could not be queued (the sweep queues it again): %s",
                notification_id,
                describe(exc),
            )

    transaction.on_commit(send)


def requeue_lost(*, now: datetime) -> int:
    """Queue again the pending notifications whose attempt is LOST_AFTER_SECONDS overdue: their
    message was lost. Each is taken by a conditional update, so two sweeps never both queue it."""
    overdue = now - timedelta(seconds=LOST_AFTER_SECONDS)
    lost = Notification.objects.filter(status=Notification.Status.PENDING, next_attempt_at__lt=overdue)
    queued = 0
    rows = lost.order_by("next_attempt_at").values_list("pk", "next_attempt_at", "attempts")[:1000]
    for pk, due, attempts in rows:
        with transaction.atomic():
            if Notification.objects.filter(pk=pk, next_attempt_at=due, attempts=attempts).update(next_attempt_at=now):
                queue(pk, attempt=attempts + 1)  # the one in hand, if any, is given up
                queued += 1
    if queued:
        logger.warning("%s notification(s) had lost their message and were queued again", queued)
    return queued


def deliver_task() -> Task:
    """The task from the Celery app's registry (``AlertsConfig.ready`` registers alerts.tasks)."""
    return current_app.tasks[DELIVER_TASK]


def backoff(retries: int) -> float:
    """Seconds before the attempt after ``retries`` failed retries: base, then twice that, four times…"""
    return float(settings.CRONTASK_ALERT_RETRY_BASE_SECONDS) * 2**retries


def deliver(notification_id: int, *, attempt: int | None = None) -> Retry | None:
    """Make ``attempt`` (the next one, if not given: a message from before attempts were named) at
    delivering a pending notification. Returns the attempt due next when this one failed and
    another is allowed, else None; after the last (CRONTASK_ALERT_MAX_ATTEMPTS) it is marked
    failed. Never raises for the channel's failure. A message for an attempt already made does nothing."""
    now = timezone.now()
    with transaction.atomic():
        pending = Notification.objects.select_for_update(of=("self",)).select_related(
            "channel", "job", "run", "incident"
        )
        notification = pending.filter(pk=notification_id).first()
        if notification is None or notification.status != Notification.Status.PENDING:
            return None
        if attempt is not None and notification.attempts != attempt - 1:
            logger.info(
                "notification %s: attempt %s was made already; this copy does nothing", notification_id, attempt
            )
            return None
        notification.attempts += 1
        # Held while this attempt lasts; past it (this worker died), the sweep queues the next.
        notification.next_attempt_at = now + timedelta(seconds=attempt_hold_seconds())
        notification.save(update_fields=["attempts", "next_attempt_at"])
    last_attempt = notification.attempts >= settings.CRONTASK_ALERT_MAX_ATTEMPTS
    channel = notification.channel
    if not channel.enabled:
        return _record(notification, error=_("The channel is disabled."), retry=False)
    alert = messages.alert_for(
        notification.event,
        notification.message,
        job=notification.job,
        run=notification.run,
        incident=notification.incident,
    )
    try:
        channels.send(channel, alert)
    except channels.DeliveryFailed as exc:
        return _record(notification, error=mask_error(channel, str(exc)), retry=not last_attempt)
    return _record(notification, error="", retry=False)


def _record(notification: Notification, *, error: str, retry: bool) -> Retry | None:
    """Store how the attempt went, unless the sweep gave it up meanwhile (it took too long: the
    next attempt is another's now, and its outcome will be stored)."""
    now = timezone.now()
    wait = backoff(notification.attempts - 1)
    fields: dict[str, object] = {"error": error, "next_attempt_at": now + timedelta(seconds=wait)}
    if not error:
        fields = {"status": Notification.Status.SENT, "sent_at": now, "error": "", "next_attempt_at": None}
    elif not retry:
        fields = {"status": Notification.Status.FAILED, "error": error, "next_attempt_at": None}
    mine = Notification.objects.filter(
        pk=notification.pk, status=Notification.Status.PENDING, attempts=notification.attempts
    )
    if not mine.update(**fields):
        logger.warning(
            "notification %s: attempt %s ended after it was given up", notification.pk, notification.attempts
        )
        return None
    for name, value in fields.items():
        setattr(notification, name, value)
    metrics.count_notification(sent=not error, retrying=retry)
    return Retry(wait=wait, attempt=notification.attempts + 1) if retry else None
