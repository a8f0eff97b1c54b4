"""Each HTTP call says which run it is (X-Crontask-Run-Id and the rest), so a target can tell a
call it already had from a new one."""

from __future__ import annotations

import pytest

from jobs import services as job_services
from runs import enqueue
from runs.models import Run
from runs.tasks import execute_fires, execute_job

pytestmark = pytest.mark.django_db

FIRE = "2026-03-02T10:01:00+00:00"


def identity(headers: dict) -> dict:
    return {name: value for name, value in headers.items() if name.startswith("X-Crontask-")}


def test_a_fire_a_batch_and_a_manual_run_name_themselves_to_the_target(http_target, queued_tasks):
    for job_id in ("a", "b"):
        job_services.job_create(data={"id": job_id, "interval_seconds": 60, "url": f"{http_target.url}/{job_id}"})
    execute_job.apply(kwargs={"job_id": "a", "scheduled_for": FIRE}, throw=True)
    execute_fires.apply(kwargs={"fires": [["a", "2026-03-02T10:02:00+00:00"], ["b", FIRE]]}, throw=True)
    manual = enqueue.job_run_now(job=job_services.Job.objects.get(pk="b"))
    execute_job.apply(kwargs={"job_id": "b", "run_id": manual.pk}, throw=True)

    runs = {
        (run.job_id, run.scheduled_for.isoformat() if run.scheduled_for else None): run.pk for run in Run.objects.all()
    }
    sent = sorted((path, sorted(identity(headers).items())) for _, path, headers, _ in http_target.requests)
    assert sent == sorted([
        ("/a", [("X-Crontask-Attempt", "1"), ("X-Crontask-Job-Id", "a"), ("X-Crontask-Run-Id", str(runs[("a", FIRE)])),
                ("X-Crontask-Scheduled-For", FIRE)]),
        ("/a", [("X-Crontask-Attempt", "1"), ("X-Crontask-Job-Id", "a"),
                ("X-Crontask-Run-Id", str(runs[("a", "2026-03-02T10:02:00+00:00")])),
                ("X-Crontask-Scheduled-For", "2026-03-02T10:02:00+00:00")]),
        ("/b", [("X-Crontask-Attempt", "1"), ("X-Crontask-Job-Id", "b"), ("X-Crontask-Run-Id", str(runs[("b", FIRE)])),
                ("X-Crontask-Scheduled-For", FIRE)]),
        ("/b", [("X-Crontask-Attempt", "1"), ("X-Crontask-Job-Id", "b"), ("X-Crontask-Run-Id", str(manual.pk))]),
    ])  # fmt: skip
