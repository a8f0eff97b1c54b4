"""Celery tasks: thin wrappers that call the delivery service."""

from __future__ import annotations

from celery import shared_task

from alerts import delivery


@shared_task(name=delivery.DELIVER_TASK, bind=True, acks_late=True, ignore_result=True, max_retries=None)
def deliver_notification(self, notification_id: int) -> None:  # noqa: ANN001 - Celery's bound task
    wait = delivery.deliver(notification_id)
    if wait is not None:
        raise self.retry(countdown=wait)
