from __future__ import annotations

import atexit
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.test import override_settings
from django.utils import translation
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from crontask.bootstrap import prepare_var_dir
from tests.http_target import HttpTarget
from tests.leader import wait_until_the_leader_lock_is_free

# Importing the settings makes nothing, so this process makes var/ (the SQLite test database,
# static files) and the key, as bin/run does. A key made just now is newer than the settings,
# which pytest-django imported before this file.
if settings.SECRET_KEY_FILE in prepare_var_dir():
    settings.SECRET_KEY = settings.SECRET_KEY_FILE.read_text().strip()

# This process counts its metrics (core.metrics) into a directory of its own, new each session: a
# test reads what it counted, not what earlier sessions left in var/metrics/.
settings.PROMETHEUS_MULTIPROC_DIR = Path(tempfile.mkdtemp(prefix="crontask-metrics-"))
atexit.register(shutil.rmtree, settings.PROMETHEUS_MULTIPROC_DIR, ignore_errors=True)

# Users this process makes (the admin_user fixture, on most API and admin tests) get a password
# hashed in microseconds instead of PBKDF2's 0.3 s: Django's advice for test suites. The product's
# hashers stay behind it, so a password hashed by them (a command run in-process) still checks.
override_settings(
    PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher", *settings.PASSWORD_HASHERS]
).enable()


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
    if made:
        wait_until_the_leader_lock_is_free()  # for the next test's beat


@pytest.fixture(autouse=True)
def _fresh_alert_rules():
    """Each test reads the alert rules afresh: a process caches them for a few seconds
    (alerts.selectors), and a test's rules are rolled back with its transaction."""
    from alerts.selectors import rules_changed

    rules_changed()
    yield
    rules_changed()


@pytest.fixture(autouse=True)
def _language_of_the_settings():
    """Each test starts in LANGUAGE_CODE: a request with Accept-Language (or a language cookie)
    activates its language in this thread, and it would otherwise stay for the tests after it."""
    yield
    translation.deactivate()
