"""Cancelling runs, and the concurrency policies that cancel or skip them: real runs in this
process (a python handler's forked child, a shell command, an HTTP call to the local target),
each cancelled through the API while it goes."""

from __future__ import annotations

import os
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.contrib.auth.models import Permission, User
from django.utils import timezone
from rest_framework.test import APIClient

from jobs import services as job_services
from jobs.models import Job
from runs import enqueue, reaper
from runs.execution import run_execute
from runs.models import Run
from runs.tasks import execute_job

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


@pytest.fixture(autouse=True)
def scripts_and_grace(settings):
    settings.CRONTASK_SCRIPTS_DIR = SCRIPTS
    settings.CRONTASK_ALLOW_SHELL = True
    settings.CRONTASK_CANCEL_GRACE_SECONDS = 1


def wait_for(check, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := check():
            return value
        time.sleep(0.05)
    return None


def manual_run(job: Job, overrides: dict | None = None) -> Run:
    return enqueue.create_manual(job, overrides or {}, sent=True)


class Running:
    """A run executing in a thread of this process, as a worker would."""

    def __init__(self, run: Run) -> None:
        self.run = run
        self.thread = threading.Thread(target=self._execute, daemon=True)
        self.thread.start()

    def _execute(self) -> None:
        from django.db import connections

        try:
            run_execute(job_id=self.run.job_id, run_id=self.run.pk, worker="test")
        finally:
            connections.close_all()

    def ended_within(self, seconds: float) -> bool:
        self.thread.join(seconds)
        return not self.thread.is_alive()


def status_of(run: Run) -> str:
    return Run.objects.values_list("status", flat=True).get(pk=run.pk)


@pytest.mark.django_db
def test_a_queued_run_is_cancelled_at_once_and_its_message_starts_nothing(api, admin_user, http_target, queued_tasks):
    job = job_services.job_create(data={"id": "hook", "url": f"{http_target.url}/ok"})
    run = enqueue.job_run_now(job=job, overrides={})
    answer = api.post(f"/api/runs/{run.pk}/cancel/")
    assert answer.status_code == 200
    assert (answer.data["status"], answer.data["cancelled_by"]) == ("cancelled", admin_user.username)
    assert answer.data["cancelled_at"] is not None
    execute_job.apply(kwargs={"job_id": "hook", "run_id": run.pk}, throw=True)  # its message arrives
    assert status_of(run) == "cancelled"
    assert http_target.hits.get("/ok", 0) == 0
    job.refresh_from_db()
    assert (job.run_count, job.failure_count, job.last_run_status) == (0, 0, "cancelled")
    assert api.post(f"/api/runs/{run.pk}/cancel/").status_code == 409  # it has ended


@pytest.mark.django_db
def test_cancelling_needs_the_cancel_permission(http_target, queued_tasks):
    job = job_services.job_create(data={"id": "hook", "url": f"{http_target.url}/ok"})
    run = enqueue.job_run_now(job=job, overrides={})
    viewer = User.objects.create_user("viewer", password="x", is_staff=True)
    viewer.user_permissions.add(*Permission.objects.filter(codename__in=["view_run", "view_job", "change_job"]))
    client = APIClient()
    client.force_authenticate(viewer)
    assert client.post(f"/api/runs/{run.pk}/cancel/").status_code == 403
    viewer.user_permissions.add(Permission.objects.get(codename="cancel_run"))
    viewer = User.objects.get(pk=viewer.pk)  # permissions are cached on the instance
    client.force_authenticate(viewer)
    assert client.post(f"/api/runs/{run.pk}/cancel/").status_code == 200


@pytest.mark.django_db(transaction=True)
def test_a_running_python_handler_gets_sigterm_and_is_cancelled_within_the_grace(api, admin_user, tmp_path):
    pidfile = tmp_path / "pid"
    job = job_services.job_create(
        data={"id": "py", "kind": "python", "handler": "scripts:sleepy", "timeout_seconds": 120, "max_retries": 2}
    )
    going = Running(manual_run(job, {"handler_kwargs": {"seconds": 60, "pidfile": str(pidfile)}}))
    assert wait_for(lambda: pidfile.exists() and pidfile.read_text())
    pid = int(pidfile.read_text())
    asked = time.monotonic()
    answer = api.post(f"/api/runs/{going.run.pk}/cancel/")
    assert answer.status_code == 202
    assert answer.data["status"] == "running"
    assert going.ended_within(1 + 1 + 2)  # the grace and a second (and some room for a busy machine)
    assert time.monotonic() - asked < 4
    run = Run.objects.get(pk=going.run.pk)
    assert run.status == "cancelled"
    assert run.error == f"Cancelled by {admin_user.username}: it stopped on SIGTERM."
    assert "sleeping" in run.log_output
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert not Run.objects.filter(job=job, attempt=2).exists()  # never retried


@pytest.mark.django_db(transaction=True)
def test_a_shell_command_that_ignores_sigterm_is_killed_after_the_grace(api):
    job = job_services.job_create(
        data={"id": "sh", "kind": "shell", "command": "trap '' TERM; echo started; sleep 60", "timeout_seconds": 120}
    )
    going = Running(manual_run(job))
    assert wait_for(lambda: status_of(going.run) == "running")
    time.sleep(0.3)  # the shell has set its trap
    assert api.post(f"/api/runs/{going.run.pk}/cancel/").status_code == 202
    assert going.ended_within(1 + 1 + 2)
    run = Run.objects.get(pk=going.run.pk)
    assert run.status == "cancelled"
    assert "still running 1 s after SIGTERM: killed" in run.error
    assert "started" in run.output


@pytest.mark.django_db(transaction=True)
def test_a_slow_http_call_is_cut_off(api, admin_user, http_target):
    job = job_services.job_create(data={"id": "slow", "url": f"{http_target.url}/slow/30", "timeout_seconds": 60})
    going = Running(manual_run(job))
    assert wait_for(lambda: http_target.hits.get("/slow/30"))
    assert api.post(f"/api/runs/{going.run.pk}/cancel/").status_code == 202
    assert going.ended_within(2)
    run = Run.objects.get(pk=going.run.pk)
    assert (run.status, run.error) == (
        "cancelled",
        f"Cancelled by {admin_user.username}: the call's connection was closed.",
    )


@pytest.mark.django_db(transaction=True)
def test_replace_cancels_the_going_run_and_starts_the_new_one(tmp_path):
    job = job_services.job_create(
        data={"id": "py", "kind": "python", "handler": "scripts:sleepy", "concurrency_policy": "replace"}
    )
    pidfile = tmp_path / "pid"
    first = Running(manual_run(job, {"handler_kwargs": {"seconds": 30, "pidfile": str(pidfile)}}))
    assert wait_for(lambda: pidfile.exists() and pidfile.read_text())
    second = Running(manual_run(job, {"handler_kwargs": {"seconds": 0.2}}))
    assert first.ended_within(4)
    assert second.ended_within(4)
    old, new = Run.objects.get(pk=first.run.pk), Run.objects.get(pk=second.run.pk)
    assert (old.status, old.cancelled_by) == ("cancelled", "the job's 'replace' policy (a newer run started)")
    assert new.status == "success"


@pytest.mark.django_db(transaction=True)
def test_max_concurrent_skips_the_run_one_too_many(tmp_path):
    job = job_services.job_create(
        data={"id": "py", "kind": "python", "handler": "scripts:sleepy", "max_concurrent": 1, "timeout_seconds": 30}
    )
    pidfile = tmp_path / "pid"
    first = Running(manual_run(job, {"handler_kwargs": {"seconds": 1.5, "pidfile": str(pidfile)}}))
    assert wait_for(lambda: pidfile.exists() and pidfile.read_text())
    second = Running(manual_run(job, {"handler_kwargs": {"seconds": 0.1}}))
    assert second.ended_within(4)
    assert first.ended_within(4)
    skipped = Run.objects.get(pk=second.run.pk)
    assert skipped.status == "skipped"
    assert skipped.error.startswith(f"max_concurrent 1: 1 runs of this job were going (runs {first.run.pk})")
    assert status_of(first.run) == "success"


@pytest.mark.django_db
def test_the_reaper_ends_a_cancel_no_worker_answered(http_target):
    job = job_services.job_create(data={"id": "hook", "url": f"{http_target.url}/ok"})
    long_ago = timezone.now() - timedelta(minutes=5)
    run = Run.objects.create(
        job=job, trigger="manual", status="running", started_at=long_ago, cancelled_at=long_ago, cancelled_by="ops"
    )
    reaper.reap_lost_runs()
    run.refresh_from_db()
    assert run.status == "cancelled"
    assert run.error.startswith("Cancelled by ops; its worker did not end it within the grace")


@pytest.mark.django_db
def test_max_concurrent_goes_with_allow_only(api):
    answer = api.post(
        "/api/jobs/",
        {"id": "j", "url": "http://127.0.0.1:9/", "concurrency_policy": "forbid", "max_concurrent": 2},
        format="json",
    )
    assert answer.status_code == 400
    assert "Only with the 'allow' policy" in answer.data["max_concurrent"][0]
    zero = api.post("/api/jobs/", {"id": "j", "url": "http://127.0.0.1:9/", "max_concurrent": 0}, format="json")
    assert zero.status_code == 400
    assert "max_concurrent" in zero.data


@pytest.mark.django_db
def test_the_admin_cancels_from_the_runs_page_and_the_list(client, admin_user, http_target, queued_tasks):
    client.force_login(admin_user)
    job = job_services.job_create(data={"id": "hook", "url": f"{http_target.url}/ok"})
    first, second = (enqueue.job_run_now(job=job, overrides={}) for _ in range(2))
    page = client.get(f"/admin/runs/run/{first.pk}/change/")
    assert b'id="ct-cancel-run"' in page.content
    assert client.get(f"/admin/runs/run/{first.pk}/cancel/").status_code == 405  # POST only
    client.post(f"/admin/runs/run/{first.pk}/cancel/")
    assert status_of(first) == "cancelled"
    assert b'id="ct-cancel-run"' not in client.get(f"/admin/runs/run/{first.pk}/change/").content  # it has ended
    answer = client.post(
        "/admin/runs/run/", {"action": "cancel_runs", "_selected_action": [first.pk, second.pk]}, follow=True
    )
    assert status_of(second) == "cancelled"
    text = answer.content.decode()
    assert "1 queued run(s) cancelled" in text
    assert f"{first.pk}: Run {first.pk} has ended (cancelled)" in text


@pytest.mark.django_db
def test_the_cancel_button_and_action_need_the_permission(client, http_target, queued_tasks):
    editor = User.objects.create_user("editor", password="x", is_staff=True)
    editor.user_permissions.add(*Permission.objects.filter(codename__in=["view_run", "view_job", "change_job"]))
    client.force_login(editor)
    job = job_services.job_create(data={"id": "hook", "url": f"{http_target.url}/ok"})
    run = enqueue.job_run_now(job=job, overrides={})
    page = client.get(f"/admin/runs/run/{run.pk}/change/")
    assert page.status_code == 200
    assert b'id="ct-cancel-run"' not in page.content
    client.post(f"/admin/runs/run/{run.pk}/cancel/")
    assert status_of(run) == "queued"


@pytest.mark.django_db
def test_a_batch_call_held_ahead_and_cancelled_is_not_made(http_target, settings, monkeypatch):
    """Fires of HTTP jobs sent together: one cancelled while its worker holds it makes no call."""
    from runs import execution
    from runs.tasks import execute_fires

    settings.CRONTASK_FIRE_LEAD_MS = 1000
    for job_id in ("a", "b"):
        job_services.job_create(data={"id": job_id, "interval_seconds": 60, "url": f"{http_target.url}/ok/{job_id}"})
    fire = timezone.now().replace(microsecond=0) + timedelta(seconds=2)
    start_queued = execution._start_queued

    def cancel_a_then_start(runs, **kwargs):  # while they are held: "a" is cancelled
        from runs.cancellation import run_cancel

        run_cancel(run=Run.objects.get(job_id="a"))
        start_queued(runs, **kwargs)

    monkeypatch.setattr(execution, "_start_queued", cancel_a_then_start)
    execute_fires.apply(kwargs={"fires": [[job_id, fire.isoformat()] for job_id in ("a", "b")]}, throw=True)
    assert dict(Run.objects.values_list("job_id", "status")) == {"a": "cancelled", "b": "success"}
    assert http_target.hits.get("/ok/a", 0) == 0
    assert http_target.hits["/ok/b"] == 1
