from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from crontask.health import BEAT, record_heartbeat

pytestmark = pytest.mark.django_db


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


def test_a_recent_beat_heartbeat_is_ok_and_a_stale_one_is_not():
    record_heartbeat(BEAT)
    assert APIClient().get("/api/health/").json()["beat"]["status"] == "ok"
    record_heartbeat(BEAT, now=timezone.now() - timedelta(minutes=5))
    beat = APIClient().get("/api/health/").json()["beat"]
    assert beat["status"] == "error"
    assert "heartbeat" in beat["error"]


def test_an_unreachable_broker_is_reported(settings, monkeypatch):
    from crontask.celery import app

    # Celery reads CELERY_BROKER_URL from the environment before its configuration
    monkeypatch.setenv("CELERY_BROKER_URL", "redis://127.0.0.1:1/0")
    monkeypatch.setattr(app.conf, "broker_url", "redis://127.0.0.1:1/0")
    body = APIClient().get("/api/health/").json()
    assert body["broker"]["status"] == "error"
