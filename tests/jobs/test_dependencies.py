"""Workflows on the job side: ``after`` checked on save (shape, unknown jobs, cycles), kept as
edges, versioned, exported, and shown as a graph."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from jobs import services
from jobs.importer import export_job
from jobs.models import Job, JobDependency, JobVersion

pytestmark = pytest.mark.django_db


def make(job_id: str, **extra) -> Job:
    return services.job_create(data={"id": job_id, "url": "http://127.0.0.1:9/", **extra})


def errors_of(call) -> dict[str, list[str]]:
    with pytest.raises(ValidationError) as caught:
        call()
    return caught.value.message_dict


def test_it_keeps_after_as_edges_and_updates_them():
    make("a")
    make("b")
    c = make("c", after=[{"job": "a", "on": "success"}, {"job": "b", "on": "failure"}])
    assert sorted(JobDependency.objects.values_list("job_id", "upstream_id", "on")) == [
        ("c", "a", "success"),
        ("c", "b", "failure"),
    ]
    services.job_update(job=c, data={"after": [{"job": "b", "on": "finish"}]})
    assert list(JobDependency.objects.values_list("job_id", "upstream_id", "on")) == [("c", "b", "finish")]
    services.job_delete(job=Job.objects.get(pk="c"))
    assert not JobDependency.objects.exists()


def test_it_refuses_a_cycle_naming_it():
    make("a")
    make("b", after=[{"job": "a", "on": "success"}])
    make("c", after=[{"job": "b", "on": "finish"}])
    a = Job.objects.get(pk="a")
    errors = errors_of(lambda: services.job_update(job=a, data={"after": [{"job": "c", "on": "success"}]}))
    assert errors == {"after": ["This makes a cycle: a → b → c → a."]}
    assert not JobDependency.objects.filter(job_id="a").exists()


def test_it_refuses_a_job_after_itself():
    a = make("a")
    errors = errors_of(lambda: services.job_update(job=a, data={"after": [{"job": "a", "on": "success"}]}))
    assert errors == {"after": ["A job cannot run after itself: a → a."]}


def test_it_refuses_unknown_jobs_and_bad_entries():
    errors = errors_of(lambda: make("x", after=[{"job": "nope", "on": "success"}]))
    assert errors == {"after": ["No job with id 'nope'."]}
    make("a")
    errors = errors_of(lambda: make("x", after=[{"job": "a", "on": "sometimes"}, {"job": "a", "on": "success"}, 3]))
    assert errors["after"] == [
        "Entry 0: 'on' must be one of success, failure, finish, not 'sometimes'.",
        "Entry 1: job 'a' is listed twice; list each upstream job once.",
        'Entry 2: give exactly "job" and "on", as {"job": "<id>", "on": "success"}.',
    ]
    assert errors_of(lambda: make("x", after={"job": "a"}))["after"][0].startswith("Must be a list")
    errors = errors_of(lambda: make("x", after_window_seconds=60, after=[{"job": "a", "on": "success"}]))
    assert errors == {"after_window_seconds": ["Only with after_mode 'all'; leave it empty."]}
    assert errors_of(lambda: make("x", after_mode="all")) == {"after_mode": ["'all' needs upstream jobs in 'after'."]}


def test_the_api_answers_400_naming_the_cycle(api):
    make("a")
    make("b", after=[{"job": "a", "on": "success"}])
    response = api.patch("/api/jobs/a/", {"after": [{"job": "b", "on": "failure"}]}, format="json")
    assert response.status_code == 400
    assert response.json() == {"after": ["This makes a cycle: a → b → a."]}
    response = api.post(
        "/api/jobs/", {"id": "z", "url": "http://127.0.0.1:9/", "after": [{"job": "gone"}]}, format="json"
    )
    assert response.status_code == 400
    assert "after" in response.json()


def test_deleting_or_pausing_an_upstream_is_allowed_and_the_downstream_says_what_it_waits_for(api):
    make("a")
    make("b")
    make("c", after=[{"job": "a", "on": "success"}, {"job": "b", "on": "finish"}])
    services.job_pause(job=Job.objects.get(pk="b"))
    services.job_delete(job=Job.objects.get(pk="a"))
    graph = api.get("/api/jobs/c/graph/").json()
    assert graph["upstream"] == [
        {"job": "a", "on": "success", "state": "deleted"},
        {"job": "b", "on": "finish", "state": "paused"},
    ]
    # Saving the downstream again with its deleted upstream is allowed: only new ids are checked.
    services.job_update(job=Job.objects.get(pk="c"), data={"name": "still waiting"})


def test_the_graph_shows_the_connected_chain(api):
    make("a")
    make("b", after=[{"job": "a", "on": "success"}])
    make("c", after=[{"job": "b", "on": "finish"}])
    make("d", after=[{"job": "a", "on": "failure"}])
    make("lonely")
    response = api.get("/api/jobs/b/graph/")
    assert response.status_code == 200
    graph = response.json()
    assert [node["id"] for node in graph["nodes"]] == ["a", "b", "c", "d"]
    assert graph["edges"] == [
        {"from": "a", "to": "b", "on": "success"},
        {"from": "a", "to": "d", "on": "failure"},
        {"from": "b", "to": "c", "on": "finish"},
    ]
    assert graph["upstream"] == [{"job": "a", "on": "success", "state": "active"}]
    assert graph["downstream"] == ["c"]
    assert api.get("/api/jobs/nope/graph/").status_code == 404


def test_after_is_versioned_exported_and_imported():
    make("a")
    b = make("b")
    services.job_update(job=b, data={"after": [{"job": "a", "on": "success"}], "after_mode": "all"})
    version = JobVersion.objects.filter(job_id="b").order_by("-number").first()
    assert version is not None
    assert set(version.changed_fields) == {"after", "after_mode"}
    assert version.definition["after"] == [{"job": "a", "on": "success"}]
    services.job_revert(job=Job.objects.get(pk="b"), number=1)
    assert Job.objects.get(pk="b").after == []
    assert not JobDependency.objects.filter(job_id="b").exists()
    exported = export_job(Job.objects.get(pk="b"))
    assert (exported["after"], exported["after_mode"], exported["after_window_seconds"]) == ([], "any", None)


def test_upstream_references_are_checked_on_save(settings, tmp_path):
    from pathlib import Path

    settings.CRONTASK_SCRIPTS_DIR = Path(__file__).resolve().parents[1] / "scripts"
    make("a")
    job = services.job_create(
        data={
            "id": "py",
            "handler": "scripts:echo_kwargs",
            "handler_kwargs": {"count": {"$upstream": "run_id"}, "tags": {"$upstream": "result.rows"}},
            "after": [{"job": "a", "on": "success"}],
        }
    )
    assert job.handler_kwargs["tags"] == {"$upstream": "result.rows"}
    errors = errors_of(
        lambda: services.job_update(job=job, data={"handler_kwargs": {"count": {"$upstream": "__class__"}}})
    )
    assert "$upstream '__class__'" in errors["handler_kwargs"][0]


def test_a_cycle_closed_by_a_save_made_meanwhile_is_refused_as_the_edges_are_written(monkeypatch):
    from jobs import preparation

    make("a")
    make("b", after=[{"job": "a", "on": "success"}])
    # As if "a after b" had been checked before "b after a" was committed by another request.
    monkeypatch.setattr(preparation, "check_after", lambda job, stored=None: None)
    errors = errors_of(
        lambda: services.job_update(job=Job.objects.get(pk="a"), data={"after": [{"job": "b", "on": "success"}]})
    )
    assert errors == {"after": ["This makes a cycle: a → b → a."]}
    assert Job.objects.get(pk="a").after == []


def test_an_import_creates_upstream_jobs_before_the_jobs_that_run_after_them(tmp_path):
    from jobs.importer import import_entries

    entries: list = [
        {"id": "a-send", "url": "http://127.0.0.1:9/", "after": [{"job": "c-build", "on": "finish"}]},
        {"id": "b-page", "url": "http://127.0.0.1:9/", "after": [{"job": "d-load", "on": "failure"}]},
        {"id": "c-build", "url": "http://127.0.0.1:9/", "after": [{"job": "d-load", "on": "success"}]},
        {"id": "d-load", "url": "http://127.0.0.1:9/", "interval_seconds": 60},
    ]
    summary = import_entries(entries)
    assert (summary.created, summary.invalid) == (4, [])
    assert Job.objects.get(pk="a-send").after == [{"job": "c-build", "on": "finish"}]
    again = import_entries([export_job(job) for job in Job.objects.order_by("pk")])
    assert (again.unchanged, again.invalid) == (4, [])


def test_a_chain_too_long_to_check_for_cycles_is_refused(monkeypatch):
    # The walk stops at MAX_CHAIN_JOBS: a cycle longer than that was accepted (no cycle found).
    from jobs import dependencies

    make("c0")
    for n in range(1, 7):
        make(f"c{n}", after=[{"job": f"c{n - 1}", "on": "finish"}])
    monkeypatch.setattr(dependencies, "MAX_CHAIN_JOBS", 5)  # the chain was made under a higher limit
    c0 = Job.objects.get(pk="c0")
    errors = errors_of(lambda: services.job_update(job=c0, data={"after": [{"job": "c6", "on": "finish"}]}))
    assert errors == {"after": ["This chain is too long to check for cycles: at most 5 jobs."]}
    assert not JobDependency.objects.filter(job_id="c0").exists()
    # A new job at the end of the chain is refused the same way: its upstream chain cannot be walked.
    errors = errors_of(lambda: make("tail", after=[{"job": "c6", "on": "finish"}]))
    assert errors == {"after": ["This chain is too long to check for cycles: at most 5 jobs."]}
    # Within the limit, a chain is accepted.
    make("short", after=[{"job": "c3", "on": "finish"}])


def test_the_api_refuses_a_cycle_too_long_to_check_with_a_400(api, monkeypatch):
    from jobs import dependencies

    make("d0")
    for n in range(1, 5):
        make(f"d{n}", after=[{"job": f"d{n - 1}", "on": "finish"}])
    monkeypatch.setattr(dependencies, "MAX_CHAIN_JOBS", 3)
    response = api.patch("/api/jobs/d0/", {"after": [{"job": "d4", "on": "finish"}]}, format="json")
    assert response.status_code == 400
    assert response.json() == {"after": ["This chain is too long to check for cycles: at most 3 jobs."]}
