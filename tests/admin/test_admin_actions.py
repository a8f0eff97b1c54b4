"""Admin actions count only the jobs they changed and say why the others were left alone."""

from __future__ import annotations

import html

import pytest

from jobs import services
from jobs.models import Job
from runs.models import Run

pytestmark = pytest.mark.django_db
URL = "http://127.0.0.1:9/"


@pytest.fixture
def jobs():
    """a: paused, b: active, x: a one-off that has run (completed)."""
    services.job_create(data={"id": "a", "interval_seconds": 10, "url": URL, "status": "paused"})
    services.job_create(data={"id": "b", "interval_seconds": 10, "url": URL})
    services.job_create(data={"id": "x", "run_at": "2099-01-01T00:00:00+00:00", "url": URL})
    Job.objects.filter(pk="x").update(status=Job.Status.COMPLETED, next_run_at=None)


def act(client, action: str, ids: list[str]) -> str:
    response = client.post("/admin/jobs/job/", {"action": action, "_selected_action": ids}, follow=True)
    assert response.status_code == 200
    return html.unescape(response.content.decode())


def statuses() -> dict[str, str]:
    return dict(Job.objects.values_list("pk", "status"))


def test_pausing_counts_only_the_jobs_it_paused(staff, jobs):
    text = act(staff, "pause_jobs", ["a", "b", "x"])
    assert "1 job paused." in text
    assert "Not changed: a: already paused | x: A completed job cannot be paused." in text
    assert statuses() == {"a": "paused", "b": "paused", "x": "completed"}
    assert Job.objects.get(pk="b").next_run_at is None


def test_pausing_only_paused_jobs_pauses_none(staff, jobs):
    text = act(staff, "pause_jobs", ["a"])
    assert "0 jobs paused." in text
    assert "a: already paused" in text


def test_resuming_counts_only_the_jobs_it_resumed(staff, jobs):
    text = act(staff, "resume_jobs", ["a", "b", "x"])
    assert "1 job resumed." in text
    assert "Not changed: b: already active | x: completed" in text
    assert statuses() == {"a": "active", "b": "active", "x": "completed"}
    assert Job.objects.get(pk="a").next_run_at is not None
    task = Job.objects.get(pk="a").periodic_task
    assert task is not None
    assert task.enabled


def test_run_now_queues_one_manual_run_per_job_whatever_its_status(
    staff, jobs, queued_tasks, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        text = act(staff, "run_jobs_now", ["a", "b", "x"])
    assert "3 jobs queued to run." in text
    assert "Not changed" not in text
    runs = Run.objects.order_by("job_id")
    assert [(r.job_id, r.trigger, r.status) for r in runs] == [
        ("a", "manual", "queued"),
        ("b", "manual", "queued"),
        ("x", "manual", "queued"),
    ]
    assert sorted(task["run_id"] for task in queued_tasks) == sorted(r.pk for r in runs)
    assert statuses() == {"a": "paused", "b": "active", "x": "completed"}  # running now changes no status


def test_the_pause_button_on_a_paused_job_says_so(staff, jobs):
    response = staff.post("/admin/jobs/job/a/pause/", follow=True)
    text = html.unescape(response.content.decode())
    assert "0 jobs paused." in text
    assert "a: already paused" in text


def test_a_long_list_of_unchanged_jobs_is_cut_short(staff):
    for i in range(25):
        services.job_create(data={"id": f"p{i:02}", "interval_seconds": 10, "url": URL, "status": "paused"})
    text = act(staff, "pause_jobs", [f"p{i:02}" for i in range(25)])
    assert "p19: already paused | and 5 more" in text
    assert "p20: already paused" not in text
