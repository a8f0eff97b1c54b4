"""Notifications: recorded, queued once the caller's transaction commits, and delivered by a
Celery task (``alerts.tasks.deliver_notification``) with retries and a bounded backoff.

A broken channel never hurts the caller: ``notify`` only writes a row and queues a message after
commit (a broker that is down is logged, not raised), and each attempt's failure is recorded.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from celery import Task, current_app
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from alerts import channels, messages
from alerts.models import Channel, Notification
from alerts.secrets import mask_error
from core.outage import describe

if TYPE_CHECKING:
    from jobs.models import Job
    from runs.models import Run

logger = logging.getLogger(__name__)
DELIVER_TASK = "alerts.tasks.deliver_notification"


def notify(
    channel: Channel, event: str, message: str, *, job: Job | None = None, run: Run | None = None
) -> Notification:
    """Record a notification of ``event`` to ``channel`` and queue its delivery after commit."""
    notification = Notification.objects.create(channel=channel, event=event, message=message, job=job, run=run)
    pk = notification.pk

    def send() -> None:
        try:
            deliver_task().apply_async(args=(pk,))
        except Exception as exc:  # noqa: BLE001 - whatever the transport raises, the caller goes on
            logger.warning("notification %s is recorded but could not be queued: %s", pk, describe(exc))

    transaction.on_commit(send)
    return notification


def deliver_task() -> Task:
    """The task from the Celery app's registry (``AlertsConfig.ready`` registers alerts.tasks)."""
    return current_app.tasks[DELIVER_TASK]


def backoff(retries: int) -> float:
    """Seconds before the attempt after ``retries`` failed retries: base, then twice that, four times…"""
    return float(settings.CRONTASK_ALERT_RETRY_BASE_SECONDS) * 2**retries


def deliver(notification_id: int) -> bool:
    """One attempt at delivering a pending notification. True when it failed and another attempt
    is due; after the last (CRONTASK_ALERT_MAX_ATTEMPTS) it is marked failed. Never raises for the channel's failure."""
    with transaction.atomic():
        pending = Notification.objects.select_for_update(of=("self",)).select_related("channel", "job", "run")
        notification = pending.filter(pk=notification_id).first()
        if notification is None or notification.status != Notification.Status.PENDING:
            return False
        notification.attempts += 1
        notification.save(update_fields=["attempts"])
    last_attempt = notification.attempts >= settings.CRONTASK_ALERT_MAX_ATTEMPTS
    channel = notification.channel
    if not channel.enabled:
        return _record(notification, error="The channel is disabled.", retry=False)
    alert = messages.alert_for(notification.event, notification.message, job=notification.job, run=notification.run)
    try:
        channels.send(channel, alert)
    except channels.DeliveryFailed as exc:
        return _record(notification, error=mask_error(channel, str(exc)), retry=not last_attempt)
    return _record(notification, error="", retry=False)


def _record(notification: Notification, *, error: str, retry: bool) -> bool:
    if not error:
        notification.status, notification.sent_at, notification.error = Notification.Status.SENT, timezone.now(), ""
    elif not retry:
        notification.status, notification.error = Notification.Status.FAILED, error
    else:
        notification.error = error
    notification.save(update_fields=["status", "sent_at", "error"])
    return retry
