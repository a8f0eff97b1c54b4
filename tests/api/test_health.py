from __future__ import annotations

import socket
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from crontask.celery import app
from heartbeats.models import Heartbeat
from heartbeats.services import BEAT, record_heartbeat, worker_heartbeat_name
from monitoring.health import broker_probe

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def no_broadcast(monkeypatch):
    """The report must never ask the workers: a broadcast waits for its timeout on every request."""

    def refuse(*args, **kwargs):
        raise AssertionError("health made a broadcast")

    monkeypatch.setattr(app.control, "ping", refuse)
    monkeypatch.setattr(app.control, "broadcast", refuse)
    broker_probe.forget()
    yield
    broker_probe.forget()


def all_up() -> None:
    record_heartbeat(BEAT, hostname="beat-host-1")
    record_heartbeat(worker_heartbeat_name("celery@worker-host-1"), hostname="celery@worker-host-1")


def test_it_names_the_parts_that_are_down_with_503():
    response = APIClient().get("/api/health/")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "error"
    assert body["database"] == {"status": "ok"}
    assert body["broker"] == {"status": "ok"}
    assert body["beat"]["status"] == "error"
    assert "never" in body["beat"]["error"]
    assert body["workers"]["status"] == "error"
    assert body["workers"]["count"] == 0


def test_a_recent_beat_heartbeat_is_ok_and_a_stale_one_is_not():
    record_heartbeat(BEAT)
    assert APIClient().get("/api/health/").json()["beat"]["status"] == "ok"
    record_heartbeat(BEAT, now=timezone.now() - timedelta(minutes=5))
    beat = APIClient().get("/api/health/").json()["beat"]
    assert beat["status"] == "error"
    assert "heartbeat" in beat["error"]


def test_it_is_ok_from_recorded_heartbeats_without_asking_the_workers():
    all_up()
    response = APIClient().get("/api/health/")
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["status"] == "ok"
    assert body["workers"] == {"status": "ok", "count": 1}


def test_a_worker_counts_while_its_heartbeat_is_fresh_and_not_after():
    all_up()
    record_heartbeat(worker_heartbeat_name("celery@gone"), hostname="celery@gone")
    assert APIClient().get("/api/health/").json()["workers"]["count"] == 2
    Heartbeat.objects.filter(hostname="celery@gone").update(seen_at=timezone.now() - timedelta(minutes=2))
    assert APIClient().get("/api/health/").json()["workers"]["count"] == 1
    Heartbeat.objects.filter(name__startswith="worker:").update(seen_at=timezone.now() - timedelta(minutes=2))
    response = APIClient().get("/api/health/")
    assert response.status_code == 503
    assert response.json()["workers"]["status"] == "error"


def test_host_and_worker_names_are_shown_to_staff_only(admin_user):
    all_up()
    anonymous = APIClient().get("/api/health/").json()
    assert "hostname" not in anonymous["beat"]
    assert "names" not in anonymous["workers"]
    assert "host-1" not in str(anonymous)

    user = get_user_model().objects.create_user("plain")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    assert "host-1" not in str(client.get("/api/health/").json())

    staff = APIClient()
    staff.force_login(admin_user)  # a session, as the browsable API and the admin have
    body = staff.get("/api/health/").json()
    assert body["beat"]["hostname"] == "beat-host-1"
    assert body["workers"]["names"] == ["celery@worker-host-1"]


def use_broker(monkeypatch, url: str) -> None:
    # Not app.conf.broker_url: Celery prefers the environment's CELERY_BROKER_URL to it, and
    # undoing a patch of both left the bad URL behind for the next test.
    monkeypatch.setattr("monitoring.health.broker_url", lambda: url)


def test_an_unreachable_broker_is_reported(monkeypatch):
    use_broker(monkeypatch, "redis://127.0.0.1:1/0")
    body = APIClient().get("/api/health/").json()
    assert body["broker"]["status"] == "error"


def test_a_broker_that_accepts_and_never_answers_is_reported_without_hanging(monkeypatch):
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # the kernel accepts connections; nothing ever reads or answers them
        use_broker(monkeypatch, f"redis://127.0.0.1:{silent.getsockname()[1]}/0")
        body = APIClient().get("/api/health/").json()
    assert body["broker"] == {"status": "error", "error": "OperationalError"}


def test_the_broker_is_probed_once_per_interval_not_per_request(monkeypatch):
    probes = []

    def probe(url: str) -> dict[str, str]:
        probes.append(url)
        return {"status": "ok"}

    monkeypatch.setattr("monitoring.health._probe_broker", probe)
    for _ in range(5):
        assert APIClient().get("/api/health/").json()["broker"] == {"status": "ok"}
    assert len(probes) == 1


def test_a_database_that_is_down_is_reported(monkeypatch):
    from django.db import OperationalError
    from django.db.models import QuerySet

    def down(self):
        raise OperationalError("connection refused")

    monkeypatch.setattr(QuerySet, "_fetch_all", down)
    response = APIClient().get("/api/health/")
    assert response.status_code == 503
    body = response.json()
    assert body["database"] == {"status": "error", "error": "OperationalError"}
    assert body["workers"]["status"] == "error"


def test_it_is_never_rate_limited(settings):
    from django.core.cache import cache

    settings.CRONTASK_API_THROTTLE_ANON = "2/min"
    cache.clear()
    all_up()
    assert {APIClient().get("/api/health/").status_code for _ in range(5)} == {200}
    cache.clear()
