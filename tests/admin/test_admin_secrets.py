"""The admin never shows a job's secrets: not on the read-only page of staff who may only view
jobs, not in the edit form; and the edit form saved as shown keeps the stored secrets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.contrib.auth.models import Permission

from jobs import services
from jobs.models import Job
from jobs.secrets import MASK
from tests.admin.test_admin_basics import form

pytestmark = pytest.mark.django_db

TEST_SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"
URL = "https://bot:url-pass-1234@example.com/hook?token=query-token-5678&page=2"
HEADERS = {"Authorization": "Bearer header-token-0001", "Ocp-Apim-Subscription-Key": "sub-key-0002"}
BODY = "user=bob&password=form-pass-0006"
KWARGS = {"user": "bob", "password": "kwarg-pass-0003", "options": {"api_key": "nested-key-0004"}}
SECRETS = ("url-pass-1234", "query-token-5678", "header-token-0001", "sub-key-0002", "form-pass-0006")
KWARG_SECRETS = ("kwarg-pass-0003", "nested-key-0004")


@pytest.fixture(autouse=True)
def jobs(settings):
    settings.CRONTASK_SCRIPTS_DIR = TEST_SCRIPTS
    services.job_create(data={"id": "h", "interval_seconds": 60, "url": URL, "headers": HEADERS, "body": BODY})
    services.job_create(
        data={"id": "p", "kind": "python", "handler": "scripts:careless_login", "handler_kwargs": KWARGS}
    )


@pytest.fixture
def viewer(client, django_user_model):
    """Staff who may only view jobs."""
    user = django_user_model.objects.create_user("viewer", password="pw-for-tests", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_job"))
    client.force_login(user)
    return client


def page(client, job_id: str) -> str:
    response = client.get(f"/admin/jobs/job/{job_id}/change/")
    assert response.status_code == 200
    return response.content.decode()


def test_a_view_only_user_sees_no_secret_on_the_read_only_page(viewer):
    http, python = page(viewer, "h"), page(viewer, "p")
    assert 'name="url"' not in http  # read-only indeed: no inputs
    for secret in SECRETS:
        assert secret not in http
    for secret in KWARG_SECRETS:
        assert secret not in python
    assert "https://bot:********@example.com/hook?token=********&amp;page=2" in http
    assert "bob" in python  # what is not a secret is shown


def test_the_edit_form_shows_every_secret_masked(staff):
    http, python = page(staff, "h"), page(staff, "p")
    assert 'name="url"' in http
    for secret in SECRETS:
        assert secret not in http
    for secret in KWARG_SECRETS:
        assert secret not in python
    assert MASK in python


def test_the_edit_form_saved_as_shown_keeps_the_stored_secrets(staff):
    shown_url = f"https://bot:{MASK}@example.com/hook?token={MASK}&page=2"
    headers = {"Authorization": MASK, "Ocp-Apim-Subscription-Key": MASK}
    posted = form(id="h", trigger="interval", cron="", interval_seconds="60", url=shown_url,
                  headers=json.dumps(headers), body=f"user=bob&password={MASK}", description="edited")  # fmt: skip
    response = staff.post("/admin/jobs/job/h/change/", posted)
    assert response.status_code == 302, response.content.decode()[:3000]
    job = Job.objects.get(pk="h")
    assert (job.description, job.url, job.headers, job.body) == ("edited", URL, HEADERS, BODY)
    kwargs = {"user": "bob", "password": MASK, "options": {"api_key": MASK}}
    posted = form(id="p", kind="python", trigger="manual", cron="", url="", handler="scripts:careless_login",
                  handler_kwargs=json.dumps(kwargs), description="edited")  # fmt: skip
    response = staff.post("/admin/jobs/job/p/change/", posted)
    assert response.status_code == 302, response.content.decode()[:3000]
    assert Job.objects.get(pk="p").handler_kwargs == KWARGS


def test_a_new_job_given_a_mask_is_a_form_error_naming_the_field(staff):
    response = staff.post("/admin/jobs/job/add/", form(id="n", headers=json.dumps({"X-Api-Key": MASK})))
    assert response.status_code == 200
    assert "stands for a stored secret" in response.content.decode()
    assert not Job.objects.filter(pk="n").exists()
