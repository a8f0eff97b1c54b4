"""Cloning a job: a new job with the source's definition under a new id, paused unless asked,
with the source's stored secrets (never their masks), from the service, the API
(POST /api/jobs/{id}/clone/) and the admin (the job page's Clone link, the add page pre-filled)."""

from __future__ import annotations

import html
import re
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.core.exceptions import ValidationError
from django.test import Client
from django.utils import timezone
from django_celery_beat.models import PeriodicTask
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from jobs import services
from jobs.errors import JobAlreadyExists, ShellNotPermitted
from jobs.models import Job
from jobs.secrets import MASK

pytestmark = pytest.mark.django_db

TOKEN = "Bearer header-secret-value-123"
URL = "https://user:url-password-456@127.0.0.1:9/hook?token=query-secret-789&page=2"
BODY = '{"api_key": "body-secret-abc", "n": 1}'


@pytest.fixture
def web() -> Job:
    return services.job_create(
        data={
            "id": "web", "name": "Nightly report", "description": "d", "cron": "0 3 * * *",
            "timezone": "Asia/Shanghai", "url": URL, "method": "POST", "headers": {"Authorization": TOKEN, "X-A": "1"},
            "body": BODY, "timeout_seconds": 7, "max_retries": 2, "retry_backoff_seconds": 5,
            "concurrency_policy": "forbid", "misfire_grace_seconds": 30,
        }
    )  # fmt: skip


@pytest.fixture
def sh(settings) -> Job:
    settings.CRONTASK_ALLOW_SHELL = True
    return services.job_create(data={"id": "sh", "interval_seconds": 60, "command": "PGPASSWORD=pg-secret-1 psql"})


DEFINITION = (
    "description", "kind", "trigger", "cron", "interval_seconds", "run_at", "timezone", "url", "method", "headers",
    "body", "follow_redirects", "handler", "handler_kwargs", "command", "timeout_seconds", "max_retries",
    "retry_backoff_seconds", "concurrency_policy", "misfire_grace_seconds",
)  # fmt: skip


def definition(job: Job) -> dict:
    return {name: getattr(job, name) for name in DEFINITION}


def user(*codenames: str):
    made = get_user_model().objects.create_user("u-" + "-".join(codenames), password=None, is_staff=True)
    made.user_permissions.set(Permission.objects.filter(codename__in=codenames))
    return made


def api_as(who) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=who).key}")
    return client


# --- the service --------------------------------------------------------------------------


def test_a_clone_copies_the_definition_with_the_real_secrets_paused_with_its_beat_schedule(web):
    services.job_clone(source=web, data={"id": "web-2"}, actor=None)
    clone = Job.objects.get(pk="web-2")
    assert definition(clone) == definition(web)
    assert (clone.headers["Authorization"], clone.url, clone.body) == (TOKEN, URL, BODY)
    assert (clone.name, clone.status, clone.next_run_at, clone.is_system) == ("Nightly report", "paused", None, False)
    assert (clone.run_count, clone.last_run_at) == (0, None)
    task = PeriodicTask.objects.get(name="crontask:web-2")
    assert clone.periodic_task_id == task.pk
    assert task.crontab is not None
    assert (task.enabled, task.crontab.hour, str(task.crontab.timezone)) == (False, "3", "Asia/Shanghai")
    assert Job.objects.get(pk="web").status == "active"  # the source is untouched


def test_a_clone_may_be_active_and_change_any_field(web):
    clone = services.job_clone(source=web, data={"id": "web-2", "status": "active", "interval_seconds": 30})
    assert (clone.status, clone.trigger, clone.cron, clone.interval_seconds) == ("active", "interval", "", 30)
    assert clone.next_run_at is not None
    assert PeriodicTask.objects.get(name="crontask:web-2").enabled
    other = services.job_clone(source=web, data={"id": "web-3", "handler": "scripts:cleanup_runs"})
    assert (other.kind, other.url, other.handler) == ("python", "", "scripts:cleanup_runs")


def test_masks_in_the_changes_stand_for_the_sources_secrets(web):
    changes = {"id": "web-2", "headers": {"Authorization": MASK, "X-B": "2"}, "body": '{"api_key": "' + MASK + '"}'}
    clone = services.job_clone(source=web, data=changes)
    assert clone.headers == {"Authorization": TOKEN, "X-B": "2"}
    assert clone.body == '{"api_key": "body-secret-abc"}'
    with pytest.raises(ValidationError) as refused:
        services.job_clone(source=web, data={"id": "web-3", "headers": {"X-Token": MASK}})
    assert "headers" in refused.value.message_dict


def test_a_name_that_was_the_sources_id_becomes_the_clones(sh, admin_user):
    assert services.job_clone(source=sh, data={"id": "sh-2"}, actor=admin_user).name == "sh-2"


def test_a_clone_needs_a_free_valid_id(web):
    with pytest.raises(ValidationError, match="id of its own"):
        services.job_clone(source=web, data={})
    with pytest.raises(ValidationError) as refused:
        services.job_clone(source=web, data={"id": "not valid!"})
    assert "id" in refused.value.message_dict
    with pytest.raises(JobAlreadyExists):
        services.job_clone(source=web, data={"id": "web"})
    assert list(Job.objects.values_list("pk", flat=True)) == ["web"]


def test_a_shell_jobs_clone_needs_the_shell_permission(sh):
    with pytest.raises(ShellNotPermitted):
        services.job_clone(source=sh, data={"id": "sh-2"}, actor=user("add_job", "change_job"))
    clone = services.job_clone(source=sh, data={"id": "sh-2"}, actor=user("add_job", "change_job", "manage_shell_jobs"))
    assert clone.command == "PGPASSWORD=pg-secret-1 psql"


def test_a_completed_one_off_clone_needs_a_new_date(db):
    past = timezone.now() - timedelta(days=1)
    source = Job.objects.create(id="once", trigger="date", run_at=past, url="http://127.0.0.1:9/", status="completed")
    with pytest.raises(ValidationError) as refused:
        services.job_clone(source=source, data={"id": "once-2"})
    assert "run_at" in refused.value.message_dict
    clone = services.job_clone(source=source, data={"id": "once-2", "run_at": timezone.now() + timedelta(days=1)})
    assert (clone.trigger, clone.status) == ("date", "paused")


# --- the API ------------------------------------------------------------------------------


def test_the_api_answers_201_with_the_clone_its_secrets_masked(api, web):
    response = api.post("/api/jobs/web/clone/", {"id": "web-2", "name": "Copy"}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["id"], body["name"], body["status"], body["cron"]) == ("web-2", "Copy", "paused", "0 3 * * *")
    assert body["headers"]["Authorization"] == MASK
    for secret in ("header-secret", "url-password", "query-secret", "body-secret"):
        assert secret not in response.content.decode()
    assert Job.objects.get(pk="web-2").headers["Authorization"] == TOKEN


def test_the_api_sends_back_a_gets_output_as_a_clone(api, web):
    shown = api.get("/api/jobs/web/").json()
    response = api.post("/api/jobs/web/clone/", {**shown, "id": "web-2"}, format="json")
    assert response.status_code == 201, response.content
    clone = Job.objects.get(pk="web-2")
    assert (clone.url, clone.body, clone.headers["Authorization"]) == (URL, BODY, TOKEN)
    assert clone.status == "active"  # the GET's output named it


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [({}, 400, "id"), ({"id": "bad id"}, 400, "id"), ({"id": "bulk"}, 400, "id"), ({"id": "web"}, 409, "id"),
     ({"id": "web-2", "cron": "61 * * * *"}, 400, "cron"), ({"id": "web-2", "colour": "red"}, 400, "colour")],
)  # fmt: skip
def test_the_api_refuses_a_bad_clone_naming_the_field(api, web, body, status, field):
    response = api.post("/api/jobs/web/clone/", body, format="json")
    assert response.status_code == status, response.content
    assert field in response.json()
    assert Job.objects.count() == 1


def test_the_api_answers_404_for_no_such_job(api):
    assert api.post("/api/jobs/nope/clone/", {"id": "x"}, format="json").status_code == 404


def test_the_api_needs_the_add_permission_and_the_shell_permission_for_shell(web, sh):
    assert api_as(user("view_job", "change_job")).post("/api/jobs/web/clone/", {"id": "a"}).status_code == 403
    assert api_as(user("add_job")).post("/api/jobs/web/clone/", {"id": "a"}, format="json").status_code == 403
    editor = api_as(user("add_job", "change_job"))
    assert editor.post("/api/jobs/web/clone/", {"id": "a"}, format="json").status_code == 201
    refused = editor.post("/api/jobs/sh/clone/", {"id": "b"}, format="json")
    assert refused.status_code == 403
    assert "shell" in refused.json()["detail"].lower()
    assert set(Job.objects.values_list("pk", flat=True)) == {"web", "sh", "a"}


# --- the admin ----------------------------------------------------------------------------


def admin_as(who) -> Client:
    client = Client()
    client.force_login(who)
    return client


def form_of(page: str) -> dict[str, str]:
    """The add form's fields as the page fills them (inputs, selects, textareas), enough to post."""
    data = {}
    for name, value in re.findall(r'<input[^>]*?name="([^"]+)"[^>]*?value="([^"]*)"', page):
        data[name] = html.unescape(value)
    for attrs in re.findall(r"<input([^>]*type=\"checkbox\"[^>]*)>", page):
        name = re.search(r'name="([^"]+)"', attrs)
        if name and "checked" in attrs:
            data[name.group(1)] = "on"
        elif name:
            data.pop(name.group(1), None)
    for name, value in re.findall(r'<textarea[^>]*name="([^"]+)"[^>]*>\n?(.*?)</textarea>', page, re.S):
        data[name] = html.unescape(value)
    for name, options in re.findall(r'<select[^>]*name="([^"]+)"[^>]*>(.*?)</select>', page, re.S):
        chosen = re.search(r'<option value="([^"]*)"[^>]*selected', options)
        data[name] = chosen.group(1) if chosen else ""
    return data


def test_the_job_page_links_to_a_prefilled_add_form_with_the_secrets_masked(admin_user, web):
    client = admin_as(admin_user)
    assert (
        'href="/admin/jobs/job/add/?clone=web" class="historylink" id="ct-clone"'
        in client.get("/admin/jobs/job/web/change/").content.decode()
    )
    page = client.get("/admin/jobs/job/add/?clone=web").content.decode()
    for secret in ("header-secret", "url-password", "query-secret", "body-secret"):
        assert secret not in page
    form = form_of(page)
    assert form.get("id", "") == ""
    shown = (form["name"], form["cron"], form["status"], form["timeout_seconds"])
    assert shown == ("Nightly report", "0 3 * * *", "paused", "7")


def test_the_prefilled_form_saved_with_a_new_id_is_a_clone_with_the_real_secrets(admin_user, web):
    client = admin_as(admin_user)
    form = form_of(client.get("/admin/jobs/job/add/?clone=web").content.decode())
    refused = client.post("/admin/jobs/job/add/?clone=web", form)
    assert refused.status_code == 200  # the form again: the copy needs an id of its own
    assert "id of its own" in refused.content.decode()
    response = client.post("/admin/jobs/job/add/?clone=web", {**form, "id": "web-2"})
    assert response.status_code == 302, response.content.decode()[:2000]
    clone = Job.objects.get(pk="web-2")
    assert definition(clone) == definition(web)
    assert (clone.status, clone.name) == ("paused", "Nightly report")
    assert PeriodicTask.objects.filter(name="crontask:web-2", enabled=False).exists()


def test_the_prefilled_form_of_a_shell_job_needs_the_shell_permission(sh):
    client = admin_as(user("view_job", "add_job", "change_job"))
    form = form_of(client.get("/admin/jobs/job/add/?clone=sh").content.decode())
    assert "pg-secret" not in str(form)
    response = client.post("/admin/jobs/job/add/?clone=sh", {**form, "id": "sh-2"})
    assert response.status_code == 200
    assert "Shell jobs need the" in response.content.decode()
    assert not Job.objects.filter(pk="sh-2").exists()


def test_the_clone_link_is_for_those_who_may_add_and_change_jobs(web):
    assert 'id="ct-clone"' not in admin_as(user("view_job")).get("/admin/jobs/job/web/change/").content.decode()
    adder = admin_as(user("view_job", "add_job")).get("/admin/jobs/job/web/change/").content.decode()
    assert 'id="ct-clone"' not in adder  # a clone carries the secrets: the permission to change them too
    page = admin_as(user("view_job", "add_job", "change_job")).get("/admin/jobs/job/web/change/").content.decode()
    assert 'id="ct-clone"' in page


def test_a_clone_of_no_such_job_is_a_blank_add_form_with_a_warning(admin_user):
    response = admin_as(admin_user).get("/admin/jobs/job/add/?clone=nope")
    assert response.status_code == 200
    assert "There is no job &#x27;nope&#x27; to copy." in response.content.decode()


@pytest.mark.django_db
def test_cloning_needs_the_permission_to_change_jobs_since_it_carries_the_secrets():
    """Someone who may add jobs but not change them could otherwise send another job's secret
    headers to a URL of their own."""
    from django.contrib.auth.models import Permission, User
    from rest_framework.test import APIClient

    services.job_create(
        data={"id": "src", "url": "https://api.example.com/", "headers": {"Authorization": "Bearer s3cret"}}
    )
    adder = User.objects.create_user("adder", password="x", is_staff=True)
    adder.user_permissions.add(*Permission.objects.filter(codename__in=["add_job", "view_job"]))
    client = APIClient()
    client.force_authenticate(adder)
    answer = client.post("/api/jobs/src/clone/", {"id": "mine", "url": "https://evil.example.com/"}, format="json")
    assert answer.status_code == 403
    assert not Job.objects.filter(pk="mine").exists()
