"""Metrics count a dependency run as any other, under its own trigger label."""

from __future__ import annotations

import pytest

from jobs import services as job_services
from runs.models import Run
from runs.tasks import execute_job
from tests.monitoring.test_metrics import counted

pytestmark = pytest.mark.django_db


def test_a_dependency_run_is_counted_with_trigger_dependency(http_target, django_capture_on_commit_callbacks):
    job_services.job_create(data={"id": "up", "interval_seconds": 60, "url": f"{http_target.url}/"})
    job_services.job_create(data={"id": "down", "url": f"{http_target.url}/", "after": [{"job": "up", "on": "finish"}]})
    labels = {"kind": "http", "trigger": "dependency", "status": "success"}
    before = counted("crontask_runs_total", labels)
    with django_capture_on_commit_callbacks(execute=False):  # the downstream's message: run here below
        execute_job.apply(kwargs={"job_id": "up", "scheduled_for": "2026-03-02T10:01:00+00:00"}, throw=True)
    downstream = Run.objects.get(job_id="down")
    with django_capture_on_commit_callbacks(execute=True):
        execute_job.apply(kwargs={"job_id": "down", "run_id": downstream.pk}, throw=True)
    assert Run.objects.get(pk=downstream.pk).status == "success"
    assert counted("crontask_runs_total", labels) == before + 1
