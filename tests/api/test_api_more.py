"""Bulk actions, handlers, permissions, pagination, query counts and bad input across the API."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from jobs import services
from jobs.models import Job
from runs.models import Run

pytestmark = pytest.mark.django_db
URL = "http://127.0.0.1:9/"


def client_for(*perms: str) -> APIClient:
    user = get_user_model().objects.create_user(f"u{len(perms)}{'-'.join(perms)}", password="x")
    for perm in perms:
        user.user_permissions.add(Permission.objects.get(codename=perm))
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return client


def test_bulk_gives_a_result_per_id_and_one_bad_id_stops_nothing(api, queued_tasks):
    for job_id in ("a", "b"):
        services.job_create(data={"id": job_id, "interval_seconds": 5, "url": URL})
    services.job_create(data={"id": "sys", "interval_seconds": 5, "url": URL})
    Job.objects.filter(pk="sys").update(is_system=True)
    response = api.post("/api/jobs/bulk/", {"action": "pause", "ids": ["a", "missing", "b"]}, format="json")
    assert response.status_code == 200
    assert response.json()["results"] == [
        {"id": "a", "ok": True, "error": None},
        {"id": "missing", "ok": False, "error": "Not found."},
        {"id": "b", "ok": True, "error": None},
    ]
    assert set(Job.objects.filter(status="paused").values_list("pk", flat=True)) == {"a", "b"}
    response = api.post("/api/jobs/bulk/", {"action": "delete", "ids": ["a", "sys"]}, format="json")
    assert response.json()["results"][1] == {
        "id": "sys",
        "ok": False,
        "error": "'sys' is a system job and cannot be deleted.",
    }
    assert list(Job.objects.values_list("pk", flat=True)) == ["b", "sys"]
    assert api.post("/api/jobs/bulk/", {"action": "run", "ids": ["b"]}, format="json").json()["results"][0]["ok"]
    assert Run.objects.get().trigger == "manual"


def test_bulk_needs_the_permission_of_its_action():
    services.job_create(data={"id": "a", "interval_seconds": 5, "url": URL})
    changer = client_for("change_job")
    assert changer.post("/api/jobs/bulk/", {"action": "pause", "ids": ["a"]}, format="json").status_code == 200
    assert changer.post("/api/jobs/bulk/", {"action": "delete", "ids": ["a"]}, format="json").status_code == 403


def test_bad_bulk_requests_are_400(api):
    for payload in ({"action": "explode", "ids": ["a"]}, {"action": "pause", "ids": []}, {"action": "pause"}):
        assert api.post("/api/jobs/bulk/", payload, format="json").status_code == 400


def test_shell_jobs_need_their_own_permission(settings):
    settings.CRONTASK_ALLOW_SHELL = True
    shell = {"id": "sh", "kind": "shell", "command": "echo hi", "interval_seconds": 60}
    assert client_for("add_job").post("/api/jobs/", shell, format="json").status_code == 403
    assert client_for("add_job", "manage_shell_jobs").post("/api/jobs/", shell, format="json").status_code == 201
    assert client_for("change_job").patch("/api/jobs/sh/", {"command": "id"}, format="json").status_code == 403


def test_the_handler_registry_is_served_with_signatures(api, settings):
    settings.CRONTASK_SCRIPTS_DIR = Path(__file__).resolve().parents[1] / "scripts"
    handlers = {h["handler"]: h for h in api.get("/api/handlers/").json()}
    echo = handlers["scripts:echo_kwargs"]
    assert echo["name"] == "Echo"
    assert echo["parameters"][0] == {
        "name": "count",
        "type": "int",
        "required": True,
        "default": None,
        "nullable": False,
    }
    assert handlers["scripts:async_value"]["is_async"] is True


def test_jobs_filter_search_order_and_paginate(api):
    services.job_create(data={"id": "alpha", "interval_seconds": 5, "url": "http://one.example/"})
    services.job_create(data={"id": "beta", "cron": "* * * * *", "url": "http://two.example/"})
    services.job_pause(job=Job.objects.get(pk="beta"))
    ids = lambda response: [j["id"] for j in response.json()["results"]]  # noqa: E731
    assert ids(api.get("/api/jobs/?status=paused")) == ["beta"]
    assert ids(api.get("/api/jobs/?trigger=interval")) == ["alpha"]
    assert ids(api.get("/api/jobs/?search=two.example")) == ["beta"]
    assert ids(api.get("/api/jobs/?ordering=-id")) == ["beta", "alpha"]
    page = api.get("/api/jobs/?limit=1&offset=1").json()
    assert (page["count"], [j["id"] for j in page["results"]]) == (2, ["beta"])
    assert api.get("/api/jobs/?status=bogus").status_code == 400


def test_runs_filter_by_job_status_trigger_and_start(api):
    job = services.job_create(data={"id": "j", "interval_seconds": 5, "url": URL})
    other = services.job_create(data={"id": "k", "interval_seconds": 5, "url": URL})
    Run.objects.create(job=job, trigger="scheduled", status="success", started_at="2026-01-01T00:00:00Z")
    Run.objects.create(job=job, trigger="manual", status="failed", started_at="2026-02-01T00:00:00Z")
    Run.objects.create(job=other, trigger="manual", status="failed", started_at="2026-03-01T00:00:00Z")
    count = lambda query: api.get(f"/api/runs/?{query}").json()["count"]  # noqa: E731
    assert count("job=j") == 2
    assert count("status=failed") == 2
    assert count("trigger=scheduled") == 1
    assert count("started_after=2026-01-15T00:00:00Z") == 2
    assert count("started_before=2026-01-15T00:00:00Z") == 1
    assert api.get("/api/runs/?started_after=yesterday").status_code == 400


@pytest.mark.parametrize("path", ["/api/runs/", "/api/jobs/j/runs/", "/api/jobs/"])
def test_a_page_costs_the_same_queries_whatever_its_size(api, path):
    job = services.job_create(data={"id": "j", "interval_seconds": 5, "url": URL})

    def queries() -> int:
        with CaptureQueriesContext(connection) as ctx:
            assert api.get(path).status_code == 200
        return len(ctx.captured_queries)

    Run.objects.create(job=job, trigger="manual", status="success")
    few = queries()
    Run.objects.bulk_create([Run(job=job, trigger="manual", status="success") for _ in range(40)])
    for i in range(20):
        services.job_create(data={"id": f"more{i}", "interval_seconds": 5, "url": URL})
    assert queries() == few


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"interval_seconds": "5s"}, "interval_seconds"),
        ({"interval_seconds": 5, "timeout_seconds": "ten"}, "timeout_seconds"),
        ({"interval_seconds": 5, "max_retries": -1}, "max_retries"),
        ({"interval_seconds": 5, "headers": "X: 1"}, "headers"),
        ({"interval_seconds": 5, "headers": {"X": 1}}, "headers"),
        ({"interval_seconds": 5, "headers": {"X-Bad": "a\r\nSet-Cookie: x"}}, "headers"),
        ({"interval_seconds": 5, "headers": {"Bad Name": "x"}}, "headers"),
        ({"interval_seconds": 5, "url": "file:///etc/passwd"}, "url"),
        ({"interval_seconds": 5, "url": "gopher://x/"}, "url"),
        ({"interval_seconds": 5, "method": "TRACE"}, "method"),
        ({"interval_seconds": 5, "body": "x" * (1024 * 1024 + 1)}, "body"),
        ({"interval_seconds": 5, "status": "completed"}, "status"),
        ({"interval_seconds": 5, "is_system": True, "bogus": 1}, "bogus"),
        ({"interval_seconds": 5, "kind": "ftp"}, "kind"),
        ({"interval_seconds": 5, "run_at": "not a date"}, "run_at"),
        ({"interval_seconds": 5, "id": "x" * 101}, "id"),
        ({"interval_seconds": 5, "id": "bad id with spaces"}, "id"),
        ({"interval_seconds": 5, "misfire_grace_seconds": -3}, "misfire_grace_seconds"),
        ({"interval_seconds": 2**40}, "interval_seconds"),
        ({"run_at": "9999-12-31T23:59:59-12:00"}, "run_at"),
        ({"interval_seconds": 5, "kind": "python", "handler": "os:system", "url": ""}, "handler"),
    ],
)
def test_a_table_of_bad_payloads_gets_400_with_the_field(api, payload, field):
    response = api.post("/api/jobs/", {"id": "bad", "url": URL, **payload}, format="json")
    assert response.status_code == 400, response.content[:300]
    assert field in response.json(), response.json()
    assert not Job.objects.exists()


@pytest.mark.parametrize(
    "query",
    [
        "limit=0",
        "limit=-1",
        "limit=abc",
        "offset=-5",
        "offset=1e9",
        "offset=99999999999999999999999",
        "limit=99999999999999999999",
    ],
)
def test_bad_limit_or_offset_is_400_not_500(api, query):
    response = api.get(f"/api/runs/?{query}")
    assert response.status_code == 400
    assert set(response.json()) <= {"limit", "offset"}


def test_a_huge_request_body_is_refused_with_400(api):
    response = api.post("/api/jobs/", {"id": "x", "url": URL, "body": "y" * (3 * 1024 * 1024)}, format="json")
    assert response.status_code == 400


def test_the_schema_and_its_docs_are_served_without_a_cdn(api):
    schema = api.get("/api/schema/?format=json").json()
    assert schema["openapi"].startswith("3.")
    assert {
        "/api/jobs/",
        "/api/jobs/{id}/run/",
        "/api/jobs/bulk/",
        "/api/handlers/",
        "/api/cron/preview/",
        "/api/health/",
        "/api/runs/{id}/",
    } <= set(schema["paths"])
    docs = api.get("/api/docs/").content.decode()
    assert "swagger-ui" in docs
    assert "cdn" not in docs.lower()


def test_api_paths_no_route_matches_answer_json_404(api):
    response = api.get("/api/runs/a.b/")
    assert response.status_code == 404
    assert response.json() == {"detail": "Not found."}
    assert api.get("/api/nothing-here/").json() == {"detail": "Not found."}


@pytest.mark.parametrize("value", ["9913-06-28T17:33:11+17:34", "0001-01-01T00:00:00+05:00"])
def test_odd_offsets_in_date_filters_are_handled_not_500(api, value):
    response = api.get("/api/runs/", {"started_after": value})
    assert response.status_code in (200, 400)
