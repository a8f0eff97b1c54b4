"""What the job API and the Weizhi paths show of a job's secrets: the mask, never the value; and
sending the mask back keeps the stored value."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from jobs import services
from jobs.models import Job
from jobs.secrets import MASK
from runs.models import Run
from runs.tasks import execute_job

pytestmark = pytest.mark.django_db

TEST_SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"
URL = "https://bot:url-pass-1234@example.com/hook?token=query-token-5678&page=2"
HEADERS = {"Authorization": "Bearer header-token-0001", "X-Auth-Key": "auth-key-0002", "Accept": "text/plain"}
KWARGS: dict[str, Any] = {
    "user": "bob",
    "password": "kwarg-pass-0003",
    "options": {"api_key": "nested-key-0004", "region": "eu"},
}
SECRETS = (
    "url-pass-1234",
    "query-token-5678",
    "header-token-0001",
    "auth-key-0002",
    "kwarg-pass-0003",
    "nested-key-0004",
)


@pytest.fixture(autouse=True)
def test_scripts(settings):
    settings.CRONTASK_SCRIPTS_DIR = TEST_SCRIPTS


def http_job(**extra) -> Job:
    return services.job_create(data={"id": "h", "interval_seconds": 60, "url": URL, "headers": HEADERS, **extra})


def python_job() -> Job:
    return services.job_create(
        data={"id": "p", "kind": "python", "handler": "scripts:careless_login", "handler_kwargs": KWARGS}
    )


def assert_no_secret(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text


def test_it_masks_the_url_password_and_secret_query_values(api):
    http_job()
    shown = api.get("/api/jobs/h/").json()
    assert shown["url"] == f"https://bot:{MASK}@example.com/hook?token={MASK}&page=2"
    assert shown["headers"] == {"Authorization": MASK, "X-Auth-Key": MASK, "Accept": "text/plain"}
    assert_no_secret(api.get("/api/jobs/").content.decode())


def test_it_masks_secret_kwargs_at_any_depth(api):
    python_job()
    shown = api.get("/api/jobs/p/").json()
    assert shown["handler_kwargs"] == {"user": "bob", "password": MASK, "options": {"api_key": MASK, "region": "eu"}}
    assert_no_secret(api.get("/api/jobs/?kind=python").content.decode())


def test_it_masks_secret_pairs_in_a_form_or_json_body(api):
    http_job(body='{"client_secret": "body-secret-0005", "grant": "x"}')
    assert api.get("/api/jobs/h/").json()["body"] == f'{{"client_secret": "{MASK}", "grant": "x"}}'
    services.job_update(job=Job.objects.get(pk="h"), data={"body": "user=bob&password=form-pass-0006"})
    assert api.get("/api/jobs/h/").json()["body"] == f"user=bob&password={MASK}"


def test_a_put_of_a_gets_output_keeps_every_stored_secret(api):
    http_job(body="user=bob&password=form-pass-0006")
    python_job()
    for job_id in ("h", "p"):
        before = Job.objects.get(pk=job_id)
        shown = api.get(f"/api/jobs/{job_id}/").json()
        sent_back = f"{shown['url']} {shown['body']}" if job_id == "h" else str(shown["handler_kwargs"])
        assert MASK in sent_back
        shown["description"] = "edited"
        assert api.put(f"/api/jobs/{job_id}/", shown, format="json").status_code == 200
        after = Job.objects.get(pk=job_id)
        assert after.description == "edited"
        assert (after.url, after.headers, after.body, after.handler_kwargs) == (
            before.url, before.headers, before.body, before.handler_kwargs,
        )  # fmt: skip


def test_a_masked_value_keeps_its_stored_value_beside_edits(api):
    python_job()
    http_job()
    kwargs = {"user": "alice", "password": MASK, "options": {"api_key": MASK, "region": "us"}}
    assert api.patch("/api/jobs/p/", {"handler_kwargs": kwargs}, format="json").status_code == 200
    assert Job.objects.get(pk="p").handler_kwargs == {
        **KWARGS,
        "user": "alice",
        "options": {**KWARGS["options"], "region": "us"},
    }
    url = f"https://bot:{MASK}@example.com/other?page=3&token={MASK}"
    assert api.patch("/api/jobs/h/", {"url": url}, format="json").status_code == 200
    assert Job.objects.get(pk="h").url == "https://bot:url-pass-1234@example.com/other?page=3&token=query-token-5678"


def test_a_mask_that_stands_for_nothing_stored_is_refused_naming_the_field(api):
    payload = {"id": "n", "url": f"https://example.com/?token={MASK}", "headers": {"X-Api-Key": MASK}}
    response = api.post("/api/jobs/", payload, format="json")
    assert response.status_code == 400
    assert set(response.json()) == {"url", "headers"}
    assert "'X-Api-Key'" in response.json()["headers"][0]
    assert "'token'" in response.json()["url"][0]
    assert not Job.objects.exists()
    python_job()
    response = api.patch("/api/jobs/p/", {"handler_kwargs": {**KWARGS, "options": {"api_secret": MASK}}}, format="json")
    assert response.status_code == 400
    assert "'options.api_secret'" in response.json()["handler_kwargs"][0]


def test_the_weizhi_paths_mask_the_job_and_its_runs(api):
    http_job(body="password=form-pass-0006")
    Run.objects.create(job_id="h", trigger="manual", status="success", response_body="ok", target="-")
    shown = api.get("/jobs/h").json()
    assert shown["url"] == f"https://bot:{MASK}@example.com/hook?token={MASK}&page=2"
    assert shown["headers"] == {"Authorization": MASK, "X-Auth-Key": MASK, "Accept": "text/plain"}
    assert shown["body"] == f"password={MASK}"
    (item,) = api.get("/jobs/h/runs").json()["items"]
    assert item["url"] == shown["url"]
    assert_no_secret(api.get("/jobs/h").content.decode() + api.get("/jobs/h/runs").content.decode())


def test_a_response_that_echoes_a_secret_header_is_stored_masked(api, http_target, client, admin_user):
    headers = {"X-Access-Key": "access-key-0007", "Authorization": "Bearer header-token-0001"}
    services.job_create(
        data={"id": "e", "interval_seconds": 60, "url": f"{http_target.url}/echo-headers", "headers": headers}
    )
    execute_job.apply(kwargs={"job_id": "e", "scheduled_for": "2026-03-02T10:01:00+00:00"}, throw=True)
    run = Run.objects.get(job_id="e")
    assert run.status == "success"
    assert http_target.requests[0][2]["X-Access-Key"] == "access-key-0007"  # sent as stored
    assert f"X-Access-Key: {MASK}" in run.response_body
    assert f"Authorization: {MASK}" in run.response_body
    client.force_login(admin_user)
    shown = (
        api.get(f"/api/runs/{run.pk}/").content.decode()
        + api.get("/jobs/e/runs").content.decode()
        + client.get(f"/admin/runs/run/{run.pk}/change/").content.decode()
    )
    assert MASK in shown
    assert "access-key-0007" not in shown
    assert "header-token-0001" not in shown


def test_a_handler_that_echoes_its_secret_kwargs_has_them_masked_in_its_run(api):
    python_job()
    execute_job.apply(kwargs={"job_id": "p", "scheduled_for": "2026-03-02T10:01:00+00:00"}, throw=True)
    run = Run.objects.get(job_id="p")
    assert run.status == "success", run.error
    assert run.result == {"user": "bob", "password": MASK, "options": {"api_key": MASK, "region": "eu"}}
    assert f"logging in as bob with {MASK}" in run.log_output
    assert f"api key {MASK}" in run.log_output
    assert_no_secret(api.get(f"/api/runs/{run.pk}/").content.decode())


def test_search_finds_what_is_shown_and_never_a_secret(api, admin_user, client, settings):
    settings.CRONTASK_ALLOW_SHELL = True
    http_job()
    services.job_create(data={"id": "sh", "interval_seconds": 60, "command": "backup --password=shell-pass-0005 /srv"})
    found = lambda query: [job["id"] for job in api.get("/api/jobs/", {"search": query}).json()["results"]]  # noqa: E731
    assert found("example.com/hook") == ["h"]
    assert found("backup") == ["sh"]
    client.force_login(admin_user)
    for secret in (*SECRETS[:2], "shell-pass-0005", "query-tok", "url-pa"):
        # A secret would be found one guessed character at a time: search never looks at it.
        assert found(secret) == [], secret
        assert "0 jobs" in client.get("/admin/jobs/job/", {"q": secret}).content.decode()
    assert "1 job" in client.get("/admin/jobs/job/", {"q": "example.com"}).content.decode()
