"""The Celery options that make a run survive a dead worker without being run twice."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import cast

import pytest
from celery import Task
from django.core.validators import MaxValueValidator

from crontask.celery import app
from jobs.models import Job
from runs.tasks import execute_job

ROOT = Path(__file__).resolve().parents[1]


def longest_job_timeout() -> int:
    field = Job._meta.get_field("timeout_seconds")
    return min(v.limit_value for v in field.validators if isinstance(v, MaxValueValidator))


def test_a_message_is_acknowledged_after_its_run_and_given_back_if_its_worker_dies():
    # acks late + reject on worker lost: a worker killed mid-run leaves the message to be
    # delivered again (the run claim refuses the duplicate), never silently dropped.
    assert app.conf.task_acks_late is True
    assert app.conf.task_reject_on_worker_lost is True
    assert execute_job.acks_late is True
    # A worker takes one message at a time, so a long run does not hold others back.
    assert app.conf.worker_prefetch_multiplier == 1


def test_redis_redelivers_a_message_only_after_the_longest_job_timeout(tmp_path):
    # Settings are read once at import: look at them in a process started with Redis named.
    env = {**os.environ, "CELERY_BROKER_URL": "redis://127.0.0.1:6379/0", "CRONTASK_VAR_DIR": str(tmp_path)}
    env.pop("CRONTASK_VISIBILITY_TIMEOUT", None)
    code = "import json; from crontask.celery import app; print(json.dumps(app.conf.broker_transport_options))"
    done = subprocess.run(
        [sys.executable, "-c", code],
        env={**env, "DJANGO_SETTINGS_MODULE": "crontask.settings"},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    options = json.loads(done.stdout.strip().splitlines()[-1])
    assert longest_job_timeout() == 24 * 3600
    assert options["visibility_timeout"] > longest_job_timeout()


class _FakeTask:
    """What Celery's task signals pass: a task with its request."""

    def __init__(self, *, is_eager: bool) -> None:
        self.request = type("Request", (), {"is_eager": is_eager})()


def _Task(*, is_eager: bool) -> Task:
    return cast(Task, _FakeTask(is_eager=is_eager))


@pytest.mark.django_db(transaction=True)
def test_a_worker_keeps_its_database_connection_from_one_task_to_the_next(monkeypatch):
    from celery.fixups.django import DjangoWorkerFixup  # type: ignore[attr-defined]  # celery-types lacks it
    from django.db import connection

    from crontask.celery import close_old_database_connections

    monkeypatch.setitem(connection.settings_dict, "CONN_MAX_AGE", 60)  # as with PostgreSQL
    connection.close()
    connection.ensure_connection()
    connection.close_at = None
    opened = connection.connection
    fixup = DjangoWorkerFixup(app)
    for _ in range(3):  # what a worker's child does around each task
        fixup.on_task_prerun(sender=_Task(is_eager=False))
        close_old_database_connections(task=_Task(is_eager=False))
        Job.objects.exists()
        fixup.on_task_postrun(sender=_Task(is_eager=False))
        close_old_database_connections(task=_Task(is_eager=False))
    assert connection.connection is opened  # reused, not a new connection per run


@pytest.mark.django_db(transaction=True)
def test_a_connection_past_its_age_is_replaced_between_tasks():
    from django.db import connection

    from crontask.celery import close_old_database_connections

    connection.ensure_connection()
    connection.close_at = 0  # older than CONN_MAX_AGE
    close_old_database_connections(task=_Task(is_eager=False))
    assert connection.connection is None
    assert Job.objects.exists() is False  # and the next query opens a new one
