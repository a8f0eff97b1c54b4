"""API rate limits: CRONTASK_API_THROTTLE_USER / _ANON, off by default."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.core.cache import cache
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from jobs import services

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fresh_counts():
    cache.clear()
    yield
    cache.clear()


def token_client(username: str) -> APIClient:
    user = get_user_model().objects.create_user(username)
    user.user_permissions.set(Permission.objects.filter(codename__in=["view_job", "view_run"]))
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return client


def test_there_is_no_limit_by_default(api, settings):
    assert (settings.CRONTASK_API_THROTTLE_USER, settings.CRONTASK_API_THROTTLE_ANON) == ("", "")
    assert {api.get("/api/jobs/").status_code for _ in range(30)} == {200}


def test_the_user_limit_answers_429_past_the_rate_per_user(settings):
    settings.CRONTASK_API_THROTTLE_USER = "3/min"
    alice, bob = token_client("alice"), token_client("bob")
    assert [alice.get("/api/jobs/").status_code for _ in range(4)] == [200, 200, 200, 429]
    refused = alice.get("/api/runs/")
    assert refused.status_code == 429
    assert int(refused["Retry-After"]) > 0
    assert bob.get("/api/jobs/").status_code == 200  # counted per user


def test_the_anonymous_limit_counts_anonymous_clients_by_address_and_not_users(settings):
    settings.CRONTASK_ALLOW_ANONYMOUS_API = True  # opens the Weizhi paths' reads
    settings.CRONTASK_API_THROTTLE_ANON = "3/min"
    services.job_create(data={"id": "ping", "interval_seconds": 60, "url": "http://127.0.0.1:9/"})
    anonymous = APIClient()
    assert [anonymous.get("/jobs/ping").status_code for _ in range(4)] == [200, 200, 200, 429]
    assert APIClient(REMOTE_ADDR="10.1.2.3").get("/jobs/ping").status_code == 200
    # X-Forwarded-For is the client's to write: it does not make a new address (no proxy by default).
    assert anonymous.get("/jobs/ping", HTTP_X_FORWARDED_FOR="10.9.9.9").status_code == 429
    user = token_client("carol")
    assert {user.get("/api/jobs/").status_code for _ in range(5)} == {200}


def test_the_user_limit_does_not_count_anonymous_requests(settings):
    settings.CRONTASK_ALLOW_ANONYMOUS_API = True
    settings.CRONTASK_API_THROTTLE_USER = "2/min"
    services.job_create(data={"id": "ping", "interval_seconds": 60, "url": "http://127.0.0.1:9/"})
    assert {APIClient().get("/jobs/ping").status_code for _ in range(5)} == {200}
