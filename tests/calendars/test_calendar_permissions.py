"""Calendars need the model permissions of calendars.Calendar, like every other API model; the
job preview needs view_job."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from rest_framework.test import APIClient

from calendars import services
from jobs import services as job_services

pytestmark = pytest.mark.django_db


def client_with(*codenames: str) -> APIClient:
    user = get_user_model().objects.create_user(f"u{len(codenames)}{'-'.join(codenames)}"[:150], password="pw")
    user.user_permissions.set(Permission.objects.filter(codename__in=codenames))
    client = APIClient()
    client.force_authenticate(user)
    return client


def test_reading_and_writing_calendars_need_their_permissions():
    calendar = services.calendar_create(data={"name": "c"})
    assert APIClient().get("/api/calendars/").status_code in (401, 403)
    nobody = client_with()
    assert nobody.get("/api/calendars/").status_code == 403
    viewer = client_with("view_calendar")
    assert viewer.get("/api/calendars/").status_code == 200
    assert viewer.post("/api/calendars/", {"name": "d"}, format="json").status_code == 403
    assert viewer.post(f"/api/calendars/{calendar.pk}/import-ics/", {}).status_code == 403
    assert viewer.delete(f"/api/calendars/{calendar.pk}/").status_code == 403
    editor = client_with("view_calendar", "add_calendar", "change_calendar", "delete_calendar")
    assert editor.post("/api/calendars/", {"name": "d"}, format="json").status_code == 201
    assert editor.patch(f"/api/calendars/{calendar.pk}/", {"description": "x"}, format="json").status_code == 200
    assert editor.delete(f"/api/calendars/{calendar.pk}/").status_code == 204


def test_the_job_preview_needs_view_job():
    job_services.job_create(data={"id": "j", "cron": "0 * * * *", "url": "http://127.0.0.1:9/"})
    assert client_with("view_calendar").get("/api/jobs/j/preview/").status_code == 403
    assert client_with("view_job").get("/api/jobs/j/preview/").status_code == 200
