"""Run again: a new manual run of a run's job with the run's one-off values, by run now's rules,
from the service, the API (POST /api/runs/{id}/rerun/) and the run page's button."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.core.exceptions import ValidationError
from django.test import Client
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from jobs import services
from jobs.errors import ShellNotPermitted
from jobs.models import Job
from runs import enqueue
from runs.models import Run

pytestmark = pytest.mark.django_db

URL = "http://127.0.0.1:9/"
SECRET = "Bearer one-off-secret-value"


@pytest.fixture
def web() -> Job:
    return services.job_create(data={"id": "web", "interval_seconds": 60, "url": URL, "method": "POST"})


@pytest.fixture
def sh(settings) -> Job:
    settings.CRONTASK_ALLOW_SHELL = True
    return services.job_create(data={"id": "sh", "interval_seconds": 60, "command": "echo hi", "status": "paused"})


@pytest.fixture
def first(web, queued_tasks) -> Run:
    """A manual run of ``web`` with one-off values, a secret among them."""
    return enqueue.job_run_now(job=web, overrides={"body": "one-off", "headers": {"Authorization": SECRET}})


def user(*codenames: str):
    made = get_user_model().objects.create_user("u-" + "-".join(codenames), password=None, is_staff=True)
    made.user_permissions.set(Permission.objects.filter(codename__in=codenames))
    return made


def api_as(who) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=who).key}")
    return client


# --- the service --------------------------------------------------------------------------


def test_a_run_again_is_a_new_queued_manual_run_with_the_same_one_off_values(
    first, queued_tasks, django_capture_on_commit_callbacks
):
    first.status = Run.Status.FAILED
    first.save(update_fields=["status"])
    with django_capture_on_commit_callbacks(execute=True):
        again = enqueue.run_again(run=first, actor=None)
    assert again.pk != first.pk
    assert (again.job_id, again.trigger, again.status, again.attempt) == ("web", "manual", "queued", 1)
    assert again.overrides == {"body": "one-off", "headers": {"Authorization": SECRET}}  # the values, not masks
    assert again.retry_of_id is None
    assert again.scheduled_for is None
    assert queued_tasks[-1] == {"job_id": "web", "run_id": again.pk}
    assert Run.objects.get(pk=first.pk).status == Run.Status.FAILED  # the first is left as it was


def test_a_scheduled_run_again_is_a_manual_run_without_one_off_values(web, queued_tasks):
    scheduled = Run.objects.create(job=web, trigger=Run.Trigger.SCHEDULED, status=Run.Status.SUCCESS)
    again = enqueue.run_again(run=scheduled, actor=None)
    assert (again.trigger, again.overrides) == ("manual", {})


def test_a_run_of_a_paused_job_runs_again_as_run_now_would(sh, queued_tasks, admin_user):
    run = Run.objects.create(job=sh, trigger=Run.Trigger.MANUAL, status=Run.Status.SUCCESS)
    assert enqueue.run_again(run=run, actor=admin_user).job_id == "sh"


def test_a_shell_jobs_run_again_needs_the_shell_permission(sh, queued_tasks):
    run = Run.objects.create(job=sh, trigger=Run.Trigger.MANUAL, status=Run.Status.SUCCESS)
    with pytest.raises(ShellNotPermitted):
        enqueue.run_again(run=run, actor=user("change_job"))
    assert Run.objects.filter(job=sh).count() == 1


def test_one_off_values_the_job_no_longer_takes_are_refused(first, queued_tasks):
    services.job_update(job=first.job, data={"kind": "python", "url": "", "handler": "scripts:cleanup_runs"})
    with pytest.raises(ValidationError) as refused:
        enqueue.run_again(run=first, actor=None)
    assert set(refused.value.message_dict) == {"body", "headers"}
    assert Run.objects.count() == 1


def test_a_run_whose_job_is_gone_is_refused(first):
    Job.objects.filter(pk="web").delete()
    with pytest.raises(ValidationError, match="no longer exists"):
        enqueue.run_again(run=first, actor=None)


# --- the API ------------------------------------------------------------------------------


def test_the_api_answers_202_with_the_new_run_its_secrets_masked(api, first):
    response = api.post(f"/api/runs/{first.pk}/rerun/")
    assert response.status_code == 202, response.content
    body = response.json()
    assert body["id"] != first.pk
    assert (body["job"], body["trigger"], body["status"]) == ("web", "manual", "queued")
    assert body["overrides"] == {"body": "one-off", "headers": {"Authorization": "********"}}
    assert Run.objects.get(pk=body["id"]).overrides["headers"] == {"Authorization": SECRET}


def test_the_api_needs_the_permission_to_change_the_job(first):
    assert api_as(user("view_job", "view_run")).post(f"/api/runs/{first.pk}/rerun/").status_code == 403
    assert api_as(user("change_job")).post(f"/api/runs/{first.pk}/rerun/").status_code == 202
    assert APIClient().post(f"/api/runs/{first.pk}/rerun/").status_code == 403


def test_the_api_refuses_a_shell_run_again_without_the_shell_permission(sh, queued_tasks):
    run = Run.objects.create(job=sh, trigger=Run.Trigger.MANUAL, status=Run.Status.SUCCESS)
    response = api_as(user("change_job")).post(f"/api/runs/{run.pk}/rerun/")
    assert response.status_code == 403
    assert "shell" in response.json()["detail"].lower()
    assert api_as(user("change_job", "manage_shell_jobs")).post(f"/api/runs/{run.pk}/rerun/").status_code == 202


def test_the_api_answers_404_for_no_such_run_and_400_for_values_the_job_refuses(api, first):
    assert api.post("/api/runs/999999/rerun/").status_code == 404
    assert api.post("/api/runs/abc/rerun/").status_code == 404
    assert api.get(f"/api/runs/{first.pk}/rerun/").status_code == 405
    services.job_update(job=first.job, data={"kind": "python", "url": "", "handler": "scripts:cleanup_runs"})
    response = api.post(f"/api/runs/{first.pk}/rerun/")
    assert response.status_code == 400
    assert set(response.json()) == {"body", "headers"}


# --- the admin ----------------------------------------------------------------------------


def admin_as(who, *, csrf: bool = False) -> Client:
    client = Client(enforce_csrf_checks=csrf)
    client.force_login(who)
    return client


def test_the_run_page_button_runs_again_and_opens_the_new_run(admin_user, first):
    client = admin_as(admin_user)
    page = client.get(f"/admin/runs/run/{first.pk}/change/").content.decode()
    assert 'id="ct-run-again"' in page
    response = client.post(f"/admin/runs/run/{first.pk}/run-again/", follow=True)
    again = Run.objects.exclude(pk=first.pk).get()
    assert response.redirect_chain[-1][0] == f"/admin/runs/run/{again.pk}/change/"
    assert f"Run {again.pk} queued: run {first.pk} again" in response.content.decode()
    assert again.overrides == first.overrides


def test_the_button_is_post_only_and_needs_the_csrf_token(admin_user, first):
    assert admin_as(admin_user).get(f"/admin/runs/run/{first.pk}/run-again/").status_code == 405
    client = admin_as(admin_user, csrf=True)
    assert client.post(f"/admin/runs/run/{first.pk}/run-again/").status_code == 403
    page = client.get(f"/admin/runs/run/{first.pk}/change/")
    token = page.cookies["csrftoken"].value
    response = client.post(f"/admin/runs/run/{first.pk}/run-again/", {"csrfmiddlewaretoken": token})
    assert response.status_code == 302
    assert Run.objects.count() == 2


def test_the_button_is_for_those_who_may_change_the_job(first):
    viewer = admin_as(user("view_job", "view_run"))
    assert 'id="ct-run-again"' not in viewer.get(f"/admin/runs/run/{first.pk}/change/").content.decode()
    response = viewer.post(f"/admin/runs/run/{first.pk}/run-again/", follow=True)
    assert "needs the permission to change it" in response.content.decode()
    assert Run.objects.count() == 1
    editor = admin_as(user("view_job", "view_run", "change_job"))
    assert 'id="ct-run-again"' in editor.get(f"/admin/runs/run/{first.pk}/change/").content.decode()
    editor.post(f"/admin/runs/run/{first.pk}/run-again/")
    assert Run.objects.count() == 2


def test_the_button_says_why_it_did_not_run_again(sh, queued_tasks):
    run = Run.objects.create(job=sh, trigger=Run.Trigger.MANUAL, status=Run.Status.SUCCESS)
    client = admin_as(user("view_job", "view_run", "change_job"))
    response = client.post(f"/admin/runs/run/{run.pk}/run-again/", follow=True)
    assert response.redirect_chain[-1][0] == f"/admin/runs/run/{run.pk}/change/"
    assert "Not run again: Shell jobs need the" in response.content.decode()
    assert Run.objects.filter(job=sh).count() == 1


def test_the_button_of_no_such_run_is_not_found(admin_user):
    assert admin_as(admin_user).post("/admin/runs/run/999999/run-again/").status_code == 404
    assert admin_as(admin_user).post("/admin/runs/run/abc/run-again/").status_code == 404
