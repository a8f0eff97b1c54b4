from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.test import override_settings
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from jobs import services
from runs.models import Run

pytestmark = pytest.mark.django_db

PING = {"id": "ping", "interval_seconds": 2, "url": "http://127.0.0.1:9/", "method": "GET"}


def test_anonymous_requests_are_refused(client):
    assert APIClient().get("/api/jobs/").status_code in (401, 403)
    assert APIClient().post("/api/jobs/", PING, format="json").status_code in (401, 403)


@override_settings(CRONTASK_ALLOW_ANONYMOUS_API=True)
def test_anonymous_api_access_opens_no_path_under_api(db):
    # It opens the Weizhi-compatible paths' reads only (tests/api/test_permissions.py has the matrix).
    assert APIClient().get("/api/jobs/").status_code in (401, 403)
    assert APIClient().post("/api/jobs/", PING, format="json").status_code in (401, 403)


def test_a_job_is_created_with_a_token_and_read_back(api):
    created = api.post("/api/jobs/", PING, format="json")
    assert created.status_code == 201, created.json()
    body = created.json()
    assert (body["id"], body["trigger"], body["kind"], body["status"]) == ("ping", "interval", "http", "active")
    assert body["next_run_at"] is not None
    assert api.get("/api/jobs/ping/").json()["interval_seconds"] == 2
    listed = api.get("/api/jobs/").json()
    assert listed["count"] == 1
    assert [job["id"] for job in listed["results"]] == ["ping"]


def test_session_auth_works_for_admin_users(admin_user):
    client = APIClient()
    client.force_login(admin_user)
    assert client.get("/api/jobs/").status_code == 200


def test_a_duplicate_id_is_409(api):
    api.post("/api/jobs/", PING, format="json")
    response = api.post("/api/jobs/", PING, format="json")
    assert response.status_code == 409
    assert "already exists" in response.json()["id"][0]


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"cron": "61 * * * *", "interval_seconds": None}, "cron"),
        ({"interval_seconds": "often"}, "interval_seconds"),
        ({"method": "BREW"}, "method"),
        ({"url": "javascript:alert(1)"}, "url"),
        ({"headers": {"X": "a\nb"}}, "headers"),
        ({"headers": ["not", "an", "object"]}, "headers"),
        ({"speed": "fast"}, "speed"),
        ({"timezone": "Nowhere/Land"}, "timezone"),
        ({"timeout_seconds": 0}, "timeout_seconds"),
    ],
)
def test_bad_input_is_400_with_the_field(api, patch, field):
    response = api.post("/api/jobs/", {**PING, **patch}, format="json")
    assert response.status_code == 400, response.content
    assert field in response.json()


def test_a_non_object_body_is_400(api):
    response = api.post("/api/jobs/", [1, 2], format="json")
    assert response.status_code == 400


def test_writes_need_the_job_permissions():
    user = get_user_model().objects.create_user("staff", password="x", is_staff=True)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    assert client.get("/api/jobs/").status_code == 403  # reads need view_job
    assert client.post("/api/jobs/", PING, format="json").status_code == 403
    user.user_permissions.add(Permission.objects.get(codename="view_job"))
    assert client.get("/api/jobs/").status_code == 200
    user.user_permissions.add(Permission.objects.get(codename="add_job"))
    assert client.post("/api/jobs/", PING, format="json").status_code == 201
    assert client.post("/api/jobs/ping/pause/").status_code == 403


def test_pause_resume_and_run_now(api, queued_tasks, django_capture_on_commit_callbacks):
    api.post("/api/jobs/", PING, format="json")
    assert api.post("/api/jobs/ping/pause/").json()["status"] == "paused"
    assert api.post("/api/jobs/ping/resume/").json()["status"] == "active"
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post("/api/jobs/ping/run/", {"headers": {"X-Once": "1"}}, format="json")
    assert response.status_code == 202
    run = response.json()
    assert (run["status"], run["trigger"], run["overrides"]) == ("queued", "manual", {"headers": {"X-Once": "1"}})
    assert queued_tasks == [{"job_id": "ping", "run_id": run["id"]}]


def test_a_jobs_runs_are_listed_newest_first_without_large_fields(api):
    job = services.job_create(data=PING)
    for status in ("success", "failed", "success"):
        Run.objects.create(job=job, trigger="manual", status=status, response_body="big")
    response = api.get("/api/jobs/ping/runs/")
    assert response.status_code == 200
    results = response.json()["results"]
    assert [r["status"] for r in results] == ["success", "failed", "success"]
    assert results[0]["id"] > results[1]["id"] > results[2]["id"]
    assert "response_body" not in results[0]
    assert api.get("/api/jobs/ping/runs/?status=failed").json()["count"] == 1
    assert api.get(f"/api/runs/{results[0]['id']}/").json()["response_body"] == "big"
    assert api.get("/api/jobs/missing/runs/").status_code == 404


def test_delete_removes_the_job(api):
    api.post("/api/jobs/", PING, format="json")
    assert api.delete("/api/jobs/ping/").status_code == 204
    assert api.get("/api/jobs/ping/").status_code == 404


def test_health_needs_no_credentials():
    assert APIClient().get("/health").json() == {"status": "ok"}
    assert APIClient().get("/api/health/").status_code in (200, 503)


@pytest.mark.parametrize(
    ("trigger", "field"),
    [
        ({"cron": "61 * * * *"}, "cron"),
        ({"cron": "* * * *"}, "cron"),
        ({"cron": "* * * * * * *"}, "cron"),
        ({"cron": "*/0 * * * *"}, "cron"),
        ({"cron": "60 * * * * *"}, "cron"),
        ({"cron": "0 0 31 2 *"}, "cron"),
        ({"interval_seconds": 0}, "interval_seconds"),
        ({"interval_seconds": -5}, "interval_seconds"),
        ({"cron": "* * * * *", "timezone": "Europe/Atlantis"}, "timezone"),
        ({"cron": "* * * * *", "interval_seconds": 5}, "trigger"),
        ({"interval_seconds": 5, "run_at": "2099-01-01T00:00:00Z"}, "trigger"),
        ({"run_at": "2001-01-01T00:00:00Z"}, "run_at"),
        ({"trigger": "cron", "trigger_args": {"minute": "99"}}, "cron"),
        ({"trigger": "interval", "trigger_args": {"minutes": 0}}, "trigger_args"),
    ],
)
def test_bad_triggers_are_400_with_the_field_and_save_nothing(api, trigger, field):
    payload = {"id": "bad", "url": "http://127.0.0.1:9/", **trigger}
    response = api.post("/api/jobs/", payload, format="json")
    assert response.status_code == 400, response.content
    assert field in response.json()
    assert api.get("/api/jobs/").json()["count"] == 0
