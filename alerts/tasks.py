"""Celery tasks: thin wrappers that call the delivery service."""

from __future__ import annotations

from celery import shared_task

from alerts import delivery


@shared_task(name=delivery.DELIVER_TASK, bind=True, acks_late=True, ignore_result=True, max_retries=None)
def deliver_notification(self, notification_id: int, attempt: int | None = None) -> None:  # noqa: ANN001 - Celery's bound task
    retry = delivery.deliver(notification_id, attempt=attempt)
    if retry is not None:
        kwargs = {"notification_id": notification_id, "attempt": retry.attempt}
        raise self.retry(args=(), kwargs=kwargs, countdown=retry.wait)
