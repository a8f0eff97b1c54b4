from __future__ import annotations

import pytest
from django_celery_beat.models import PeriodicTask

from jobs import services
from jobs.models import Job
from runs.models import Run

pytestmark = pytest.mark.django_db


def form(**fields) -> dict:
    base = {
        "id": "from-admin",
        "name": "",
        "description": "",
        "kind": "http",
        "trigger": "cron",
        "cron": "*/5 * * * *",
        "interval_seconds": "",
        "run_at_0": "",
        "run_at_1": "",
        "timezone": "UTC",
        "jitter_seconds": "0",
        "dst_policy": "shift_once",
        "blackout_policy": "skip",
        "url": "http://127.0.0.1:9/",
        "method": "GET",
        "headers": "{}",
        "body": "",
        "follow_redirects": "on",
        "handler": "",
        "handler_kwargs": "{}",
        "command": "",
        "timeout_seconds": "10",
        "max_retries": "0",
        "retry_backoff_seconds": "10",
        "concurrency_policy": "allow",
        "misfire_grace_seconds": "",
        "status": "active",
    }
    return {**base, **fields}


def test_a_job_added_in_the_admin_goes_through_the_services(staff):
    response = staff.post("/admin/jobs/job/add/", form())
    assert response.status_code == 302, response.content.decode()[:2000]
    job = Job.objects.get(pk="from-admin")
    assert job.next_run_at is not None
    crontab = PeriodicTask.objects.get(crontask_job=job).crontab
    assert crontab is not None
    assert crontab.minute == "*/5"


def test_the_admin_form_shows_the_same_errors_as_the_api(staff):
    response = staff.post("/admin/jobs/job/add/", form(cron="61 * * * *"))
    assert response.status_code == 200
    assert "Invalid cron expression" in response.content.decode()
    assert not Job.objects.exists()


def test_the_pause_action_uses_the_service(staff):
    services.job_create(data={"id": "a", "interval_seconds": 5, "url": "http://127.0.0.1:9/"})
    staff.post("/admin/jobs/job/", {"action": "pause_jobs", "_selected_action": ["a"]})
    job = Job.objects.get(pk="a")
    assert job.status == "paused"
    assert job.periodic_task is not None
    assert not job.periodic_task.enabled


def test_the_job_and_run_lists_render(staff):
    job = services.job_create(data={"id": "a", "interval_seconds": 5, "url": "http://127.0.0.1:9/"})
    Run.objects.create(job=job, trigger="manual", status="success")
    assert staff.get("/admin/jobs/job/").status_code == 200
    assert staff.get("/admin/runs/run/").status_code == 200
    assert staff.get("/admin/jobs/job/a/change/").status_code == 200


def test_the_job_form_previews_the_cron_with_the_apis_preview(staff):
    page = staff.get("/admin/jobs/job/add/").content.decode()
    assert 'id="cron-preview-config"' in page
    assert "/api/cron/preview/" in page
    assert "jobs/cron_preview.js" in page
    assert staff.get("/api/cron/preview/", {"expr": "*/10 * * * * *"}).status_code == 200
