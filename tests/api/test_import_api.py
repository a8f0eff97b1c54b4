"""POST /api/jobs/import/: many jobs in one request, each entry validated as any create or update,
one result an entry in order, the new ones written through the bulk path."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from audit.models import AuditEntry
from jobs import services
from jobs.models import Job, JobVersion
from jobs.serializers import MAX_IMPORT_ENTRIES

pytestmark = pytest.mark.django_db

URL = "http://127.0.0.1:9/"


def client_for(perms: list[str]) -> APIClient:
    user = get_user_model().objects.create_user(f"user-{len(perms)}", password=None, is_staff=True)
    user.user_permissions.set(Permission.objects.filter(codename__in=perms))
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return client


def test_each_entry_gets_its_result_in_order(api):
    services.job_create(data={"id": "old", "url": URL, "interval_seconds": 60})
    services.job_create(data={"id": "same", "url": URL, "interval_seconds": 60})
    body = [
        {"id": "a", "url": URL, "cron": "*/5 * * * *"},
        {"id": "bad", "url": URL, "cron": "nope"},
        {"id": "old", "url": URL, "interval_seconds": 120},
        {"id": "same", "url": URL, "interval_seconds": 60},
        "not an object",
        {"url": URL, "interval_seconds": 30},
    ]
    response = api.post("/api/jobs/import/", body, format="json", HTTP_X_CHANGE_REASON="migration")
    assert response.status_code == 200, response.json()
    data = response.json()
    assert (data["created"], data["updated"], data["unchanged"], data["invalid"]) == (2, 1, 1, 2)
    statuses = [(r["index"], r["status"]) for r in data["results"]]
    assert statuses == [
        (0, "created"),
        (1, "invalid"),
        (2, "updated"),
        (3, "unchanged"),
        (4, "invalid"),
        (5, "created"),
    ]
    assert "cron" in data["results"][1]["errors"]
    assert Job.objects.filter(pk=data["results"][5]["id"]).exists()
    assert Job.objects.get(pk="old").interval_seconds == 120
    made = JobVersion.objects.get(job_id="a")
    assert (made.actor, made.source, made.reason) == ("root", "api", "migration")
    summary = AuditEntry.objects.get(action="bulk")
    assert summary.details == {"action": "import", "created": 2, "updated": 1, "unchanged": 1, "invalid": 2}


def test_a_dry_run_answers_the_same_and_writes_nothing(api):
    body = {"jobs": [{"id": "a", "url": URL, "cron": "*/5 * * * *"}], "dry_run": True}
    data = api.post("/api/jobs/import/", body, format="json").json()
    assert (data["dry_run"], data["created"]) == (True, 1)
    assert not Job.objects.exists()
    assert not AuditEntry.objects.exists()


def test_bad_requests_are_400s_naming_the_field(api):
    assert "jobs" in api.post("/api/jobs/import/", {"jobs": []}, format="json").json()
    too_many = [{"id": f"j{i}"} for i in range(MAX_IMPORT_ENTRIES + 1)]
    response = api.post("/api/jobs/import/", too_many, format="json")
    assert response.status_code == 400
    assert "jobs" in response.json()
    assert api.post("/api/jobs/", {"id": "import", "url": URL}, format="json").status_code == 400  # reserved


def test_adding_needs_the_add_permission_and_updating_the_change_one():
    services.job_create(data={"id": "old", "url": URL, "interval_seconds": 60})
    body = [{"id": "new", "url": URL, "interval_seconds": 5}, {"id": "old", "url": URL, "interval_seconds": 5}]
    assert client_for(["view_job"]).post("/api/jobs/import/", body, format="json").status_code == 403
    adder = client_for(["view_job", "add_job"])
    data = adder.post("/api/jobs/import/", body, format="json").json()
    assert [r["status"] for r in data["results"]] == ["created", "invalid"]
    assert "may not change" in data["results"][1]["errors"]["id"][0]
    assert Job.objects.get(pk="old").interval_seconds == 60


def test_shell_entries_need_the_shell_permission(api, settings):
    settings.CRONTASK_ALLOW_SHELL = True
    adder = client_for(["view_job", "add_job", "change_job"])
    body = [{"id": "sh", "kind": "shell", "command": "id", "interval_seconds": 60}]
    data = adder.post("/api/jobs/import/", body, format="json").json()
    assert data["results"][0]["status"] == "invalid"
    assert not Job.objects.filter(pk="sh").exists()
