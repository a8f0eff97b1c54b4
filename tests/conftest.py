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
    """Celery messages the code under test queues, captured instead of sent."""
    from runs.tasks import execute_job

    sent: list[dict] = []
    monkeypatch.setattr(execute_job, "apply_async", lambda kwargs=None, **options: sent.append(kwargs))
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
