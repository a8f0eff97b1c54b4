"""Bulk actions, handlers, permissions, pagination, query counts and bad input across the API."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.core.exceptions import ValidationError
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_celery_beat.models import PeriodicTask
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from jobs import services
from jobs.models import Job
from jobs.serializers import RunNowSerializer
from runs.accounting import job_record_run
from runs.models import Run

pytestmark = pytest.mark.django_db
URL = "http://127.0.0.1:9/"
TEST_SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"
PY: dict[str, object] = {"kind": "python", "handler": "scripts:echo_kwargs", "url": ""}


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


def test_a_job_cannot_take_the_id_of_an_action_path(api):
    """/api/jobs/bulk/ is the bulk action's path: a job called "bulk" could never be read there."""
    from jobs.api import JobViewSet
    from jobs.models import RESERVED_JOB_IDS

    actions: list[Any] = JobViewSet.get_extra_actions()  # methods that @action marked with url_path and detail
    list_actions = {a.url_path for a in actions if not a.detail}
    assert list_actions <= RESERVED_JOB_IDS
    response = api.post("/api/jobs/", {"id": "bulk", "url": "http://127.0.0.1:9/"}, format="json")
    assert response.status_code == 400
    assert "reserved" in response.json()["id"][0]
    assert not Job.objects.filter(pk="bulk").exists()


@pytest.mark.parametrize("method", ["get", "put", "patch", "delete"])
def test_the_bulk_path_asked_for_as_a_job_answers_not_found(api, method):
    response = getattr(api, method)("/api/jobs/bulk/", {}, format="json")
    assert response.status_code == 404


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


def test_jobs_filter_by_kind_last_run_status_and_system(api, settings):
    settings.CRONTASK_SCRIPTS_DIR = TEST_SCRIPTS
    services.job_create(data={"id": "web", "interval_seconds": 5, "url": URL})
    services.job_create(data={"id": "py", **PY, "handler_kwargs": {"count": 1}})
    services.ensure_system_jobs()
    job_record_run(job_id="web", status="failed", started_at=timezone.now())
    ids = lambda query: sorted(j["id"] for j in api.get(f"/api/jobs/?{query}").json()["results"])  # noqa: E731
    assert ids("kind=python") == ["cleanup-runs", "py"]
    assert ids("kind=http") == ["web"]
    assert ids("last_run_status=failed") == ["web"]
    assert ids("is_system=true") == ["cleanup-runs"]
    assert ids("is_system=false") == ["py", "web"]


def test_deleting_a_job_over_the_api_takes_its_runs_and_periodic_task_but_a_system_job_is_409(api):
    job = services.job_create(data={"id": "gone", "interval_seconds": 5, "url": URL})
    Run.objects.create(job=job, trigger="manual", status="success")
    services.ensure_system_jobs()
    assert api.delete("/api/jobs/gone/").status_code == 204
    assert not Run.objects.filter(job_id="gone").exists()
    assert not PeriodicTask.objects.filter(name="crontask:gone").exists()
    refused = api.delete("/api/jobs/cleanup-runs/")
    assert refused.status_code == 409
    assert Job.objects.filter(pk="cleanup-runs").exists()


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
        # trigger_args that were a 500, a memory blowup, or silently replaced a canonical field
        ({"trigger": "interval", "trigger_args": {"weeks": 1e308}}, "trigger_args"),
        ({"trigger": "interval", "trigger_args": {"hours": "9" * 5000}}, "trigger_args"),
        ({"trigger": "interval", "trigger_args": {"days": 3661}}, "trigger_args"),
        ({"trigger": "cron", "trigger_args": {"day_of_week": "0-999999999"}}, "trigger_args"),
        ({"trigger": "cron", "trigger_args": {"day_of_week": "7"}}, "trigger_args"),
        ({"trigger": "cron", "trigger_args": {"minute": {"a": 1}}}, "trigger_args"),
        ({"trigger": "cron", "cron": "0 8 * * *", "trigger_args": {"hour": "9"}}, "trigger_args"),
        ({"trigger": "interval", "interval_seconds": 60, "trigger_args": {"hours": 1}}, "trigger_args"),
        (
            {"trigger": "date", "run_at": "2099-01-01T00:00:00Z", "trigger_args": {"run_date": "2099-02-01T00:00:00Z"}},
            "trigger_args",
        ),
        ({"trigger": "date", "trigger_args": {"run_date": "2099-02-30T00:00:00"}}, "trigger_args"),
        ({"trigger": "date", "trigger_args": {"run_date": "9999-12-31T23:59:59-12:00"}}, "trigger_args"),
        ({"trigger": "date", "trigger_args": {"run_date": "2099-12-31T23:59:59"}, "timezone": "No/Where"}, "timezone"),
        ({"trigger": "date", "trigger_args": {"run_date": "2001-01-01T00:00:00"}}, "run_at"),  # naive, past
        # valid cron whose field is wider than django-celery-beat's CrontabSchedule column
        ({"cron": "0 9 * 1,2,3,4,5,6,7,8,9,10,11,12,jan,feb,mar,apr,may,jun,jul,aug,sep,oct,nov,dec *"}, "cron"),
        ({"cron": "0 9 * * mon,tue,wed,thu,fri,sat,sun,0,1,2,3,4,5,6,mon,tue,wed,thu,fri,sat"}, "cron"),
        ({"cron": "0 " + ",".join([str(h) for h in range(24)] * 2) + " * * *"}, "cron"),
        # header values requests would refuse at send time, quoting the secret in its error
        ({"interval_seconds": 5, "headers": {"Authorization": " Bearer s3cr3t"}}, "headers"),
        ({"interval_seconds": 5, "headers": {"Authorization": "Bearer s3cr3t\t"}}, "headers"),
        ({"interval_seconds": 5, "headers": {"X-Price": "5 \u20ac"}}, "headers"),
        ({"interval_seconds": 5, "headers": {"X-Name\n": "x"}}, "headers"),
        # NUL and lone surrogates: PostgreSQL refuses them (a 500); DRF's CharFields do not see JSON
        ({"interval_seconds": 5, **PY, "handler_kwargs": {"count": 1, "label": "a\u0000b"}}, "handler_kwargs"),
        ({"interval_seconds": 5, **PY, "handler_kwargs": {"count": 1, "tags": ["\u0000"]}}, "handler_kwargs"),
        ({"interval_seconds": 5, **PY, "handler_kwargs": {"count": 1, "tags": [{"k\u0000": 1}]}}, "handler_kwargs"),
        # handlers: only functions defined in the module named; expressions checked at any depth
        ({"interval_seconds": 5, "kind": "python", "handler": "runs.retention:Run", "url": ""}, "handler"),
        ({"interval_seconds": 5, "kind": "python", "handler": "runs.retention:task_log", "url": ""}, "handler"),
        (
            {"interval_seconds": 5, **PY, "handler_kwargs": {"count": 1, "tags": [{"$expr": "__import__('os')"}]}},
            "handler_kwargs",
        ),
        (
            {"interval_seconds": 5, **PY, "handler_kwargs": {"count": 1, "tags": [{"a": {"$expr": "open('/x')"}}]}},
            "handler_kwargs",
        ),
    ],
)
def test_a_table_of_bad_payloads_gets_400_with_the_field(api, settings, payload, field):
    settings.CRONTASK_SCRIPTS_DIR = TEST_SCRIPTS
    response = api.post("/api/jobs/", {"id": "bad", "url": URL, **payload}, format="json")
    assert response.status_code == 400, response.content[:300]
    assert field in response.json(), response.json()
    assert not Job.objects.exists()
    assert not PeriodicTask.objects.exists()


def test_the_bad_payload_table_rows_are_good_once_the_bad_part_is_fixed(api, settings):
    # The rows above must be refused for their one bad part, not for anything else.
    settings.CRONTASK_SCRIPTS_DIR = TEST_SCRIPTS
    good: list[dict[str, object]] = [
        {"trigger": "cron", "trigger_args": {"day_of_week": "0-4"}},
        {"cron": "0 9 * 1,2,3,4,5,6,7,8,9,10,11,12 *"},
        {"interval_seconds": 5, "headers": {"Authorization": "Bearer s3cr3t", "X-Price": "5 \xa3"}},
        {"interval_seconds": 5, **PY, "handler_kwargs": {"count": 1, "tags": [{"a": {"$expr": "1 + 1"}}]}},
        {"trigger": "date", "trigger_args": {"run_date": "2099-12-31T23:59:59"}, "timezone": "Asia/Shanghai"},
    ]
    for index, payload in enumerate(good):
        response = api.post("/api/jobs/", {"id": f"good{index}", "url": URL, **payload}, format="json")
        assert response.status_code == 201, response.content[:300]
    assert Job.objects.get(pk="good4").run_at == datetime(2099, 12, 31, 15, 59, 59, tzinfo=UTC)


@pytest.mark.parametrize("text", ["\\u0000", "\\ud800"])
def test_a_nul_or_lone_surrogate_in_json_fields_is_400(api, settings, text):
    # Sent as raw JSON: the test client cannot encode a lone surrogate, a real client can.
    settings.CRONTASK_SCRIPTS_DIR = TEST_SCRIPTS
    body = (
        '{"id": "bad", "kind": "python", "handler": "scripts:echo_kwargs", "interval_seconds": 5,'
        f' "handler_kwargs": {{"count": 1, "tags": ["{text}"]}}}}'
    )
    response = api.post("/api/jobs/", body, content_type="application/json")
    assert response.status_code == 400, response.content[:300]
    assert "handler_kwargs" in response.json()
    assert not Job.objects.exists()


@pytest.mark.parametrize(
    "number",
    ["1e400", "9" * 5000 + ".5", "9" * 5000],
    ids=["float-overflowing-to-inf", "5000-digit-float", "5000-digit-int"],
)
def test_an_interval_number_too_big_for_python_is_400(api, number):
    # Raw JSON: 1e400 parses to inf, which int() refused with OverflowError (a 500).
    body = '{"id": "bad", "url": "http://127.0.0.1:9/", "trigger": "interval", "trigger_args": {"hours": %s}}'
    response = api.post("/api/jobs/", body % number, content_type="application/json")
    assert response.status_code == 400, response.content[:300]
    assert not Job.objects.exists()


def test_run_if_past_accepts_a_past_run_at_and_fires_it_now(api):
    past = {"url": URL, "run_at": "2001-01-01T00:00:00Z"}
    refused = api.post("/api/jobs/", {"id": "late", **past}, format="json")
    assert refused.status_code == 400
    assert "run_if_past" in refused.json()["run_at"][0]
    assert not Job.objects.exists()
    before = timezone.now()
    created = api.post("/api/jobs/", {"id": "late", **past, "run_if_past": True}, format="json")
    assert created.status_code == 201, created.content
    job = Job.objects.get(pk="late")
    assert (job.trigger, job.status) == ("date", "active")
    assert job.next_run_at is not None
    assert before - timedelta(seconds=1) <= job.next_run_at <= timezone.now()
    assert "run_if_past" not in created.json()  # input only


def test_run_if_past_works_with_a_naive_run_date_too(api):
    payload = {"id": "late", "url": URL, "trigger": "date", "trigger_args": {"run_date": "2001-01-01T00:00:00"}}
    response = api.post("/api/jobs/", {**payload, "run_if_past": True}, format="json")
    assert response.status_code == 201, response.content
    assert Job.objects.get(pk="late").run_at == datetime(2001, 1, 1, tzinfo=UTC)


def test_an_id_or_header_name_ending_in_a_newline_is_refused_where_no_form_trims_it():
    # The API's and admin's forms strip whitespace; the import command hands values over as they are.
    with pytest.raises(ValidationError) as exc:
        services.job_create(data={"id": "abc\n", "url": URL})
    assert "id" in exc.value.message_dict
    with pytest.raises(ValidationError) as exc:
        services.job_create(data={"id": "abc", "url": URL, "headers": {"X-Name\n": "1"}})
    assert "headers" in exc.value.message_dict
    assert not Job.objects.exists()


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"headers": {"X-Bad": "a\r\nSet-Cookie: x"}}, "headers"),
        ({"headers": {"Bad Name": "x"}}, "headers"),
        ({"headers": {"Authorization": " Bearer s3cr3t"}}, "headers"),
        ({"headers": {"X": 1}}, "headers"),
        ({"headers": "X: 1"}, "headers"),
        ({"headers": {f"X-{i}": "1" for i in range(101)}}, "headers"),
        ({"colour": "red"}, "colour"),
        ({"body": "x" * (2 * 1024 * 1024)}, "body"),
        ({"handler_kwargs": {"a": [{"$expr": "__import__('os')"}]}}, "handler_kwargs"),
        ({"handler_kwargs": {"a": "\u0000"}}, "handler_kwargs"),
        ({"handler_kwargs": [1]}, "handler_kwargs"),
    ],
)
def test_bad_run_now_overrides_get_400_with_the_field_and_queue_nothing(api, queued_tasks, overrides, field):
    services.job_create(data={"id": "j", "url": URL})
    response = api.post("/api/jobs/j/run/", overrides, format="json")
    assert response.status_code == 400, response.content[:300]
    assert field in response.json(), response.json()
    assert "s3cr3t" not in response.content.decode()
    assert not Run.objects.exists()
    assert queued_tasks == []


def test_run_now_overrides_are_checked_against_the_jobs_kind_and_handler(settings):
    settings.CRONTASK_SCRIPTS_DIR = TEST_SCRIPTS
    job = services.job_create(data={"id": "py", **PY, "handler_kwargs": {"count": 1}})

    def errors(data: dict) -> dict:
        serializer = RunNowSerializer(data=data, context={"job": job})
        serializer.is_valid()
        return serializer.errors

    assert errors({"handler_kwargs": {"label": "y"}}) == {}  # count comes from the job's own kwargs
    assert "Unknown argument 'colour'" in errors({"handler_kwargs": {"colour": "red"}})["handler_kwargs"][0]
    assert "must be an integer" in errors({"handler_kwargs": {"count": "one"}})["handler_kwargs"][0]
    assert "Only for an http job" in errors({"body": "x"})["body"][0]
    assert "Only for an http job" in errors({"headers": {"X": "1"}})["headers"][0]


def test_run_now_through_the_api_refuses_an_argument_the_handler_does_not_take(api, queued_tasks, settings):
    settings.CRONTASK_SCRIPTS_DIR = TEST_SCRIPTS
    services.job_create(data={"id": "py", **PY, "handler_kwargs": {"count": 1}})
    response = api.post("/api/jobs/py/run/", {"handler_kwargs": {"colour": "red"}}, format="json")
    assert response.status_code == 400
    assert "Unknown argument 'colour'" in response.json()["handler_kwargs"][0]
    assert not Run.objects.exists()
    assert queued_tasks == []


@pytest.mark.parametrize("path", ["/api/jobs/", "/jobs", "/api/jobs/bulk/", "/api/jobs/j/run/"])
@pytest.mark.parametrize("depth", [1_000, 100_000])
def test_deeply_nested_json_is_400_not_500(api, queued_tasks, path, depth):
    services.job_create(data={"id": "j", "url": URL})
    body = '{"id": "x", "url": "http://127.0.0.1:9/", "headers": ' + "[" * depth + "]" * depth + "}"
    response = api.post(path, body, content_type="application/json")
    assert response.status_code == 400, response.content[:300]
    assert Job.objects.count() == 1
    assert not Run.objects.exists()


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


@pytest.mark.parametrize(
    ("field", "data"),
    [
        ("name", {"name": "a\x00b"}),
        ("description", {"description": "\x00"}),
        ("url", {"url": "http://127.0.0.1:9/\x00"}),
        ("body", {"body": "a\x00"}),
        ("timezone", {"timezone": "UTC\x00"}),
        ("cron", {"cron": "0 9 * * *\x00"}),
        ("headers", {"headers": {"X": "\x00"}}),
        ("command", {"kind": "shell", "url": "", "command": "echo \x00"}),
        (
            "handler_kwargs",
            {
                "kind": "python",
                "url": "",
                "handler": "scripts:echo_kwargs",
                "handler_kwargs": {"count": 1, "tags": [{"\x00": 1}]},
            },
        ),
    ],
)
def test_nul_is_refused_in_every_text_and_json_field_where_no_form_checks(settings, field, data):
    # The import command calls the services with values as read from the file; on PostgreSQL a
    # NUL reached the INSERT and was a DataError.
    settings.CRONTASK_SCRIPTS_DIR = TEST_SCRIPTS
    settings.CRONTASK_ALLOW_SHELL = True
    with pytest.raises(ValidationError) as exc:
        services.job_create(data={"id": "nul", "url": URL, **data})
    assert field in exc.value.message_dict, exc.value.message_dict
    assert not Job.objects.exists()
