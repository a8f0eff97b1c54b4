from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.contrib.auth import get_user_model
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from tests.http_target import HttpTarget


@pytest.fixture
def http_target() -> Iterator[HttpTarget]:
    with HttpTarget() as target:
        yield target


@pytest.fixture
def admin_user(db):
    return get_user_model().objects.create_superuser("root", "", "pw-for-tests")


@pytest.fixture
def api(admin_user) -> APIClient:
    """An API client authenticated with the admin's token."""
    client = APIClient()
    token = Token.objects.create(user=admin_user)
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


@pytest.fixture
def queued_tasks(monkeypatch) -> list[dict]:
    """The execute_job messages the code under test queues (their kwargs), captured instead of sent."""
    from crontask.celery import app

    sent: list[dict] = []
    send_task = app.send_task

    def capture(name, args=None, kwargs=None, **options):
        if name != "runs.tasks.execute_job":
            return send_task(name, args, kwargs, **options)
        sent.append(kwargs)
        return None

    monkeypatch.setattr(app, "send_task", capture)
    return sent


@pytest.fixture
def make_beat():
    """Beat schedulers for tests; their leader locks (a connection each on PostgreSQL) are released after."""
    from crontask.celery import app
    from crontask.scheduler import CrontaskScheduler

    made = []

    def make():
        scheduler = CrontaskScheduler(app=app, lazy=True)
        made.append(scheduler)
        return scheduler

    yield make
    for scheduler in made:
        scheduler.leader.release()
