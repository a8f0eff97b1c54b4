"""The Celery application. Worker: ``celery -A crontask worker``; beat: ``celery -A crontask beat``."""

from __future__ import annotations

import os
from typing import Any

from celery import Celery, Task
from celery.signals import task_postrun, task_prerun

from crontask import broker

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "crontask.settings")

broker.register()  # filesystem:// (the embedded default) writes each message atomically
app = Celery("crontask")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


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
