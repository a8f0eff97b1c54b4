"""The Weizhi Crontask drop-in: its README's requests, as written, give its answers."""

from __future__ import annotations

import pytest
from django.test import override_settings
from rest_framework.test import APIClient

from jobs.models import Job
from runs.models import Run

pytestmark = pytest.mark.django_db

README_JOB = {
    "id": "job-ping-001",
    "cron": "*/10 * * * * *",
    "url": "http://127.0.0.1:8000",
    "method": "POST",
    "headers": {"Content-Type": "application/json", "X-Trace-Id": "demo-001"},
    "body": '{"ping":"hello"}',
}


def test_create_read_runs_and_delete_as_the_readme_shows(api):
    created = api.post("/jobs", README_JOB, format="json")
    assert (created.status_code, created.json()) == (200, {"id": "job-ping-001", "status": "scheduled"})
    job = Job.objects.get(pk="job-ping-001")
    assert (job.kind, job.trigger, job.method, job.body) == ("http", "cron", "POST", '{"ping":"hello"}')

    shown = api.get("/jobs/job-ping-001").json()
    assert shown["id"] == "job-ping-001"
    assert shown["cron"] == "*/10 * * * * *"
    assert shown["headers"] == README_JOB["headers"]
    assert shown["status"] == "scheduled"
    assert shown["next_run_time"].endswith("+00:00")

    for status, code in (("success", 200), ("failed", 500)):
        Run.objects.create(
            job=job,
            trigger="scheduled",
            status=status,
            status_code=code,
            response_body="ok",
            duration_ms=12,
            started_at="2024-01-01T04:00:00Z",
        )
    page = api.get("/jobs/job-ping-001/runs?limit=1&offset=0").json()
    assert (page["total"], page["limit"], page["offset"]) == (2, 1, 0)
    assert page["items"] == [
        {
            "job_id": "job-ping-001",
            "url": "http://127.0.0.1:8000",
            "cron": "*/10 * * * * *",
            "method": "POST",
            "status_code": 500,
            "ok": False,
            "response_text": "ok",
            "elapsed_ms": 12.0,
            "error": None,
            "run_at": "2024-01-01T04:00:00+00:00",
        }
    ]

    deleted = api.delete("/jobs/job-ping-001")
    assert (deleted.status_code, deleted.json()) == (200, {"id": "job-ping-001", "status": "deleted"})
    assert api.get("/jobs/job-ping-001").status_code == 404


def test_a_duplicate_id_is_409_and_bad_input_400(api):
    api.post("/jobs", README_JOB, format="json")
    assert api.post("/jobs", README_JOB, format="json").status_code == 409
    bad = api.post("/jobs", {**README_JOB, "id": "other", "cron": "61 * * * *"}, format="json")
    assert bad.status_code == 400
    assert "cron" in bad.json()


@override_settings(CRONTASK_ALLOW_ANONYMOUS_API=True)
def test_anonymous_access_opens_the_reads_only(api):
    api.post("/jobs", README_JOB, format="json")
    client = APIClient()
    assert client.get("/jobs/job-ping-001").json()["id"] == "job-ping-001"
    assert client.get("/jobs/job-ping-001/runs").json()["total"] == 0
    # Writes still need a user with the job permissions: an open network is not a login.
    assert client.post("/jobs", {**README_JOB, "id": "other"}, format="json").status_code in (401, 403)
    assert client.delete("/jobs/job-ping-001").status_code in (401, 403)
    assert api.get("/jobs/job-ping-001").status_code == 200


def test_without_credentials_it_is_refused_unless_opened():
    assert APIClient().post("/jobs", README_JOB, format="json").status_code in (401, 403)


def test_health_and_the_demo_target_need_no_credentials():
    client = APIClient()
    assert client.get("/health").json() == {"status": "ok"}
    answer = client.post("/demo/target", '{"ping":"hello"}', content_type="application/json").json()
    assert (answer["ok"], answer["method"], answer["received_bytes"]) == (True, "POST", 16)
    assert client.get("/demo/target").json()["method"] == "GET"
