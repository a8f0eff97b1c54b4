"""Per-job bounds: the size of handler_kwargs, headers and body, and the expressions in a job's kwargs."""

from __future__ import annotations

import json
from io import StringIO
from pathlib import Path

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command

from jobs import services
from jobs.expressions import MAX_EXPRESSION_CHARS, MAX_EXPRESSIONS, ExpressionError, resolve_kwargs
from jobs.models import Job
from jobs.validators import MAX_BODY_BYTES, MAX_HEADERS_BYTES, MAX_KWARGS_BYTES, json_size
from runs.models import Run

pytestmark = pytest.mark.django_db
URL = "http://127.0.0.1:9/"
TEST_SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"
PY = {"kind": "python", "handler": "scripts:echo_kwargs", "interval_seconds": 60}
HTTP = {"url": URL, "interval_seconds": 60}
KIB_64 = 64 * 1024  # the bound of kwargs, headers and body, written out: the tests pin it


@pytest.fixture(autouse=True)
def test_scripts(settings):
    settings.CRONTASK_SCRIPTS_DIR = TEST_SCRIPTS


def kwargs_of_size(size: int, **extra: object) -> dict:
    """Kwargs for scripts:echo_kwargs that are exactly ``size`` bytes as compact JSON."""
    kwargs = {"count": 1, **extra, "label": ""}
    kwargs["label"] = "x" * (size - json_size(kwargs))
    assert json_size(kwargs) == size
    return kwargs


def headers_of_size(size: int) -> dict:
    headers = {"X-Pad": ""}
    headers["X-Pad"] = "x" * (size - json_size(headers))
    assert json_size(headers) == size
    return headers


def expressions(count: int) -> dict:
    return {"count": 1, "tags": [{"$expr": "1 + 1"}] * count}


def long_expressions(chars: int) -> dict:
    """Ten expressions of ``chars`` characters in all (spaces after ``1 +``)."""
    texts = ["1 +" + " " * (chars // 10 - 4) + "1" for _ in range(10)]
    texts[-1] += " " * (chars - sum(map(len, texts)))
    assert sum(map(len, texts)) == chars
    return {"count": 1, "tags": [{"$expr": text} for text in texts]}


# (entry fields, the field named): each one past its bound by the least possible.
TOO_LARGE = [
    pytest.param({**PY, "handler_kwargs": kwargs_of_size(KIB_64 + 1)}, "handler_kwargs", id="kwargs"),
    pytest.param({**PY, "handler_kwargs": expressions(MAX_EXPRESSIONS + 1)}, "handler_kwargs", id="expressions"),
    pytest.param(
        {**PY, "handler_kwargs": long_expressions(MAX_EXPRESSION_CHARS + 1)}, "handler_kwargs", id="expression-chars"
    ),
    pytest.param({**HTTP, "headers": headers_of_size(KIB_64 + 1)}, "headers", id="headers"),
    pytest.param({**HTTP, "body": "x" * (KIB_64 + 1)}, "body", id="body"),
]


def test_the_bounds_are_64_kib_and_100_expressions_of_10000_characters():
    assert (MAX_KWARGS_BYTES, MAX_HEADERS_BYTES, MAX_BODY_BYTES) == (65536, 65536, 65536)
    assert (MAX_EXPRESSIONS, MAX_EXPRESSION_CHARS) == (100, 10_000)


def test_a_job_at_every_bound_is_saved():
    kwargs = kwargs_of_size(MAX_KWARGS_BYTES, tags=expressions(MAX_EXPRESSIONS)["tags"])
    services.job_create(data={"id": "py", **PY, "handler_kwargs": kwargs})
    kwargs = kwargs_of_size(MAX_KWARGS_BYTES, tags=long_expressions(MAX_EXPRESSION_CHARS)["tags"])
    services.job_create(data={"id": "py-long", **PY, "handler_kwargs": kwargs})
    services.job_create(
        data={"id": "http", **HTTP, "headers": headers_of_size(MAX_HEADERS_BYTES), "body": "x" * MAX_BODY_BYTES}
    )
    assert Job.objects.count() == 3


@pytest.mark.parametrize(("data", "field"), TOO_LARGE)
def test_saving_a_job_past_a_bound_names_the_field(data, field):
    with pytest.raises(ValidationError) as exc:
        services.job_create(data={"id": "big", **data})
    assert list(exc.value.message_dict) == [field]
    assert exc.value.message_dict[field][0].startswith("At most")


@pytest.mark.parametrize(("data", "field"), TOO_LARGE)
def test_the_api_answers_400_naming_the_field(api, data, field):
    response = api.post("/api/jobs/", {"id": "big", **data}, format="json")
    assert response.status_code == 400, response.content[:300]
    assert "At most" in response.json()[field][0]
    assert not Job.objects.exists()


def test_the_expression_count_is_refused_before_any_expression_is_parsed(monkeypatch):
    def parse(text: str) -> None:
        raise AssertionError("an expression was parsed")

    monkeypatch.setattr("jobs.handlers.validate_expression", parse)
    many = {"count": 1, "tags": [{"$expr": "1"}] * 1000}
    with pytest.raises(ValidationError) as exc:
        services.job_create(data={"id": "many", **PY, "handler_kwargs": many})
    assert "At most 100 expressions" in exc.value.message_dict["handler_kwargs"][0]


@pytest.mark.parametrize(
    ("job", "overrides", "field"),
    [
        pytest.param(PY, {"handler_kwargs": kwargs_of_size(KIB_64 + 1)}, "handler_kwargs", id="kwargs"),
        pytest.param(PY, {"handler_kwargs": expressions(MAX_EXPRESSIONS + 1)}, "handler_kwargs", id="expressions"),
        pytest.param(HTTP, {"headers": headers_of_size(KIB_64 + 1)}, "headers", id="headers"),
        pytest.param(HTTP, {"body": "x" * (KIB_64 + 1)}, "body", id="body"),
    ],
)
def test_run_now_overrides_past_a_bound_are_400_naming_the_field(api, queued_tasks, job, overrides, field):
    services.job_create(data={"id": "j", **job, **({"handler_kwargs": {"count": 1}} if job is PY else {})})
    response = api.post("/api/jobs/j/run/", overrides, format="json")
    assert response.status_code == 400, response.content[:300]
    assert "At most" in response.json()[field][0]
    assert not Run.objects.exists()
    assert queued_tasks == []


def test_run_now_headers_are_bounded_with_the_jobs_own(api, queued_tasks):
    services.job_create(data={"id": "j", **HTTP, "headers": headers_of_size(KIB_64 - 100)})
    response = api.post("/api/jobs/j/run/", {"headers": {"X-More": "y" * 200}}, format="json")
    assert response.status_code == 400, response.content[:300]
    assert "with the job's own" in response.json()["headers"][0]
    assert api.post("/api/jobs/j/run/", {"headers": {"X-More": "y"}}, format="json").status_code == 202


def test_run_now_overrides_that_add_expressions_past_the_bound_are_refused(api, queued_tasks):
    services.job_create(data={"id": "j", **PY, "handler_kwargs": {"count": 1, "tags": [{"$expr": "1"}] * 60}})
    overrides = {"handler_kwargs": {"when": {"$expr": "None"}, "label": {"$expr": "'a'"}}}
    assert api.post("/api/jobs/j/run/", overrides, format="json").status_code == 202
    services.job_update(job=Job.objects.get(pk="j"), data={"handler_kwargs": expressions(99)})
    response = api.post("/api/jobs/j/run/", overrides, format="json")
    assert response.status_code == 400, response.content[:300]
    assert "At most 100 expressions" in response.json()["handler_kwargs"][0]
    assert "with the job's own" in response.json()["handler_kwargs"][0]


def test_import_reports_each_entry_past_a_bound_and_imports_the_rest(tmp_path):
    entries: list[dict[str, object]] = []
    for index, param in enumerate(TOO_LARGE):
        data = param.values[0]
        assert isinstance(data, dict)
        entries.append({"id": f"big-{index}", **data})
    entries.append({"id": "fine", **HTTP})
    path = tmp_path / "jobs.json"
    path.write_text(json.dumps(entries))
    out, err = StringIO(), StringIO()
    with pytest.raises(SystemExit):
        call_command("import_jobs", str(path), stdout=out, stderr=err)
    assert out.getvalue().strip() == f"created 1, updated 0, unchanged 0, invalid {len(TOO_LARGE)}"
    for index, (_, field) in enumerate(p.values for p in TOO_LARGE):
        assert f"invalid big-{index}: {field}: At most" in err.getvalue()
    assert list(Job.objects.values_list("id", flat=True)) == ["fine"]


def test_a_run_refuses_more_expressions_than_the_bound_before_evaluating_any():
    with pytest.raises(ExpressionError, match="At most 100 expressions"):
        resolve_kwargs({"a": [{"$expr": "1/0"}] * (MAX_EXPRESSIONS + 1)})
    with pytest.raises(ExpressionError, match="At most 10000 characters of expressions"):
        resolve_kwargs(long_expressions(MAX_EXPRESSION_CHARS + 1))
    assert resolve_kwargs({"a": [{"$expr": "1 + 1"}] * MAX_EXPRESSIONS}) == {"a": [2] * MAX_EXPRESSIONS}
