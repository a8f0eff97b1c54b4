from __future__ import annotations

from pathlib import Path

import pytest
from django.core.exceptions import ValidationError
from django.test import override_settings

from jobs import handlers, services
from jobs.expressions import NAMES

TEST_SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


@pytest.fixture(autouse=True)
def test_scripts(settings):
    settings.CRONTASK_SCRIPTS_DIR = TEST_SCRIPTS


def test_it_describes_a_scripts_parameters_from_its_signature():
    info = handlers.describe("scripts:echo_kwargs")
    assert (info.name, info.description, info.is_async) == ("Echo", "Returns its arguments.", False)
    params = {p.name: p for p in info.parameters}
    assert (params["count"].type, params["count"].required) == ("int", True)
    assert (params["label"].type, params["label"].required, params["label"].default) == ("str", False, "x")
    assert (params["when"].type, params["when"].nullable) == ("datetime", True)
    assert params["tags"].type == "list"


def test_it_describes_the_shipped_example_scripts(settings):
    settings.CRONTASK_SCRIPTS_DIR = Path(__file__).resolve().parents[2] / "scripts"
    names = {info.handler: info for info in handlers.list_handlers()}
    assert {"scripts:cleanup_runs", "scripts:report_window", "scripts:http_check"} <= set(names)
    assert names["scripts:report_window"].is_async
    assert [p.name for p in names["scripts:http_check"].parameters if p.required] == ["url"]


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({}, "Missing required argument 'count'"),
        ({"count": 1, "colour": "red"}, "Unknown argument 'colour'"),
        ({"count": "one"}, "Argument 'count' must be an integer"),
        ({"count": True}, "Argument 'count' must be an integer"),
        ({"count": 1, "when": "yesterday"}, "Argument 'when' must be an ISO 8601 date-time"),
        ({"count": 1, "tags": "a,b"}, "Argument 'tags' must be a list"),
        ({"count": {"$expr": "__import__('os')"}}, "Argument 'count'"),
    ],
)
def test_it_names_the_parameter_a_bad_kwarg_is_for(kwargs, fragment):
    problems = handlers.check_kwargs("scripts:echo_kwargs", kwargs)
    assert any(fragment in p for p in problems), problems


def test_good_kwargs_and_expressions_pass():
    assert handlers.check_kwargs("scripts:echo_kwargs", {"count": 2, "when": "2026-01-01T00:00:00Z"}) == []
    assert handlers.check_kwargs("scripts:echo_kwargs", {"count": {"$expr": "len([1, 2])"}, "when": None}) == []


@pytest.mark.parametrize(
    ("handler", "fragment"),
    [
        ("os:system", "CRONTASK_HANDLER_PACKAGES"),
        ("subprocess:run", "CRONTASK_HANDLER_PACKAGES"),
        ("scripts:missing", "No script 'missing'"),
        ("scripts:../etc", "not a valid script name"),
    ],
)
def test_handlers_outside_the_allowed_places_are_refused(handler, fragment):
    with pytest.raises(handlers.HandlerError) as exc:
        handlers.resolve(handler)
    assert fragment in str(exc.value)


@override_settings(CRONTASK_HANDLER_PACKAGES=["tests.handler_package"])
def test_a_function_in_an_allowed_package_resolves():
    func = handlers.resolve("tests.handler_package.tasks:add")
    assert func(a=2, b=3) == 5
    assert [p.name for p in handlers.describe("tests.handler_package.tasks:add").parameters] == ["a", "b"]
    with pytest.raises(handlers.HandlerError):
        handlers.resolve("tests.handler_package.tasks:_private")
    with pytest.raises(handlers.HandlerError):
        handlers.resolve("tests.handler_packagex.tasks:add")


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("data", "field", "fragment"),
    [
        ({"handler": "os:system"}, "handler", "CRONTASK_HANDLER_PACKAGES"),
        ({"handler": "scripts:nope"}, "handler", "No script"),
        ({"handler": "scripts:echo_kwargs"}, "handler_kwargs", "count"),
        ({"handler": "scripts:echo_kwargs", "handler_kwargs": {"count": 1, "x": 1}}, "handler_kwargs", "'x'"),
    ],
)
def test_saving_a_python_job_checks_the_handler_and_its_kwargs(data, field, fragment):
    with pytest.raises(ValidationError) as exc:
        services.job_create(data={"id": "py", "kind": "python", **data})
    assert any(fragment in m for m in exc.value.message_dict[field]), exc.value.message_dict


def test_task_log_prints_outside_a_run(capsys):
    handlers.task_log("hello", 42)
    out = capsys.readouterr().out
    assert out.endswith("] hello 42\n")
    assert out.startswith("[")


@pytest.mark.parametrize(
    "handler",
    [
        "runs.retention:Run",  # a class, not a function
        "runs.retention:task_log",  # a function, but imported from jobs.handlers
        "runs.retention:settings",  # not callable at all
    ],
)
def test_it_resolves_only_functions_defined_in_the_module_named(handler):
    with pytest.raises(handlers.HandlerError):
        handlers.resolve(handler)
    assert handlers.resolve("runs.retention:run_cleanup").__name__ == "run_cleanup"


@pytest.mark.parametrize("handler", ["runs.retention:delete_old_runs", "runs.retention:parse_age"])
def test_it_refuses_a_builtin_function_not_marked_as_a_handler(handler):
    with pytest.raises(handlers.HandlerError, match=r"is not marked as a handler \(@jobs\.handlers\.handler\)"):
        handlers.resolve(handler)


@override_settings(CRONTASK_HANDLER_PACKAGES=["tests.handler_package"])
def test_an_allowed_packages_function_runs_only_if_marked():
    with pytest.raises(handlers.HandlerError) as exc:
        handlers.resolve("tests.handler_package.tasks:not_marked")
    assert str(exc.value) == (
        "'tests.handler_package.tasks:not_marked' is not marked as a handler (@jobs.handlers.handler)."
    )
    assert handlers.check_kwargs("tests.handler_package.tasks:not_marked", {}) == [str(exc.value)]
    assert handlers.check_kwargs("tests.handler_package.tasks:add", {"a": 1}) == []


def test_the_handler_decorator_keeps_the_function_and_its_signature():
    def plain(a: int, b: str = "x") -> None:
        """Doc."""

    async def coroutine(when: str | None = None) -> None:
        pass

    assert handlers.handler(plain) is plain
    assert handlers.handler(validate=lambda kwargs: {})(coroutine) is coroutine
    assert vars(plain)["crontask_handler"] is True
    assert vars(coroutine)["crontask_handler"] is True


@pytest.mark.django_db
@override_settings(CRONTASK_HANDLER_PACKAGES=["tests.handler_package"])
def test_the_api_refuses_a_function_not_marked_as_a_handler(api):
    for handler in ("runs.retention:delete_old_runs", "tests.handler_package.tasks:not_marked"):
        data: dict[str, object] = {"id": "wipe", "kind": "python", "handler": handler, "interval_seconds": 60}
        response = api.post("/api/jobs/", data, format="json")
        assert response.status_code == 400, response.content
        assert "not marked as a handler" in response.json()["handler"][0]
    data = {"id": "add", "handler": "tests.handler_package.tasks:add", "handler_kwargs": {"a": 1}}
    assert api.post("/api/jobs/", {**data, "interval_seconds": 60}, format="json").status_code == 201


def test_a_handlers_own_check_of_its_kwargs_names_the_argument(tmp_path, settings):
    (tmp_path / "checked.py").write_text(
        "from jobs.handlers import handler\n\n"
        "def positive(kwargs):\n"
        "    return {'n': 'must be positive.'} if kwargs.get('n', 1) <= 0 else {}\n\n"
        "@handler(validate=positive)\ndef run(n: int = 1) -> int:\n    return n\n"
    )
    settings.CRONTASK_SCRIPTS_DIR = tmp_path
    assert handlers.check_kwargs("scripts:checked", {"n": 0}) == ["Argument 'n': must be positive."]
    assert handlers.check_kwargs("scripts:checked", {"n": 2}) == []
    assert handlers.check_kwargs("scripts:checked", {"n": {"$expr": "0"}}) == []  # known only when it runs
    assert handlers.check_kwargs("scripts:checked", {"n": "0"})[0].startswith("Argument 'n' must be an integer")


def test_a_handlers_own_check_that_fails_is_reported_on_its_kwargs(tmp_path, settings):
    (tmp_path / "broken.py").write_text(
        "from jobs.handlers import handler\n\n"
        "@handler(validate=lambda kwargs: 1 / 0)\ndef run(n: int = 1) -> int:\n    return n\n"
    )
    settings.CRONTASK_SCRIPTS_DIR = tmp_path
    assert handlers.check_kwargs("scripts:broken", {"n": 1}) == [
        "Arguments could not be checked by scripts:broken: ZeroDivisionError: division by zero"
    ]


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"older_than_days": 0}, "Argument 'older_than_days': must be at least 1 day"),
        ({"older_than_days": -36500}, "Argument 'older_than_days': must be at least 1 day"),
        ({"keep_per_job": -1}, "Argument 'keep_per_job': must be 0 or more"),
    ],
)
def test_the_cleanup_handlers_refuse_ages_of_zero_or_less(kwargs, fragment, settings):
    settings.CRONTASK_SCRIPTS_DIR = Path(__file__).resolve().parents[2] / "scripts"
    for handler in ("runs.retention:run_cleanup", "scripts:cleanup_runs"):
        problems = handlers.check_kwargs(handler, kwargs)
        assert any(fragment in p for p in problems), (handler, problems)
        assert handlers.check_kwargs(handler, {"older_than_days": 1, "keep_per_job": 0}) == []


@pytest.mark.parametrize("kwargs", [{"older_than_days": 0}, {"older_than_days": -36500}, {"keep_per_job": -1}])
def test_run_cleanup_refuses_ages_of_zero_or_less_when_it_runs(kwargs):
    from runs.retention import run_cleanup

    with pytest.raises(ValueError, match="must be"):
        run_cleanup(**kwargs)


@pytest.mark.django_db
def test_the_cleanup_system_job_runs_the_cleanup_handler():
    """The runs app declares it (runs.retention.register), with the handler jobs allows as its own."""
    from jobs.models import Job

    assert services.ensure_system_jobs() == ["cleanup-runs"]
    job = Job.objects.get(pk="cleanup-runs")
    assert (job.kind, job.handler, job.cron, job.timeout_seconds, job.is_system) == (
        "python", "runs.retention:run_cleanup", "17 3 * * *", 3600, True,
    )  # fmt: skip
    assert job.name == "Clean up old runs"


@pytest.mark.django_db
def test_run_now_of_cleanup_runs_refuses_a_negative_age(api, queued_tasks):
    from runs.models import Run

    services.ensure_system_jobs()
    response = api.post("/api/jobs/cleanup-runs/run/", {"handler_kwargs": {"older_than_days": -36500}}, format="json")
    assert response.status_code == 400, response.content
    assert "older_than_days" in response.json()["handler_kwargs"][0]
    assert not Run.objects.exists()
    assert queued_tasks == []
    response = api.patch("/api/jobs/cleanup-runs/", {"handler_kwargs": {"older_than_days": 0}}, format="json")
    assert response.status_code == 400, response.content
    assert "older_than_days" in response.json()["handler_kwargs"][0]


def test_it_refuses_what_a_module_of_an_allowed_package_imports(tmp_path, monkeypatch, settings):
    package = tmp_path / "allowed_pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "jobs.py").write_text(
        "import os\nfrom subprocess import run\nfrom functools import partial\n\n"
        "from jobs.handlers import handler\n\n"
        "@handler\ndef mine(x: int = 0) -> int:\n    return x\n\n"
        "@handler\nasync def mine_async() -> None:\n    pass\n\n"
        "also = partial(mine, 1)\n\n"
        "class Task:\n    pass\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    settings.CRONTASK_HANDLER_PACKAGES = ["allowed_pkg"]
    for name in ("run", "also", "Task"):
        with pytest.raises(handlers.HandlerError, match=r"not a function defined in allowed_pkg\.jobs"):
            handlers.resolve(f"allowed_pkg.jobs:{name}")
    assert handlers.resolve("allowed_pkg.jobs:mine")(x=2) == 2
    assert handlers.describe("allowed_pkg.jobs:mine_async").is_async


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"count": 1, "tags": [{"$expr": "__import__('os')"}]}, "Argument 'tags' at [0]: name '__import__'"),
        (
            {"count": 1, "tags": [1, {"a": {"b": [{"$expr": "open('/x')"}]}}]},
            "Argument 'tags' at [1].a.b[0]: name 'open'",
        ),
        ({"count": 1, "when": {"$expr": "1 +"}}, "Argument 'when': invalid syntax"),
    ],
)
def test_it_checks_expressions_nested_at_any_depth(kwargs, fragment):
    problems = handlers.check_kwargs("scripts:echo_kwargs", kwargs)
    assert any(fragment in p for p in problems), problems


def test_it_checks_expressions_given_to_a_kwargs_handler(tmp_path, settings):
    (tmp_path / "anything.py").write_text("def run(**kwargs):\n    return kwargs\n")
    settings.CRONTASK_SCRIPTS_DIR = tmp_path
    assert handlers.check_kwargs("scripts:anything", {"x": 1, "y": {"$expr": "1 + 1"}}) == []
    problems = handlers.check_kwargs("scripts:anything", {"x": {"$expr": "__import__('os')"}})
    assert problems == ["Argument 'x': name '__import__' not allowed; allowed names: " + ", ".join(NAMES)]
    problems = handlers.check_kwargs("scripts:anything", {"x": {"deep": [{"$expr": "exec('1')"}]}})
    assert [p.split(":")[0] for p in problems] == ["Argument 'x' at deep[0]"]


@pytest.mark.django_db
def test_saving_a_job_refuses_a_nested_expression_on_handler_kwargs():
    with pytest.raises(ValidationError) as exc:
        services.job_create(
            data={
                "id": "py",
                "kind": "python",
                "handler": "scripts:echo_kwargs",
                "handler_kwargs": {"count": 1, "tags": [{"k": {"$expr": "__import__('os').system('id')"}}]},
            }
        )
    assert "__import__" in exc.value.message_dict["handler_kwargs"][0]
