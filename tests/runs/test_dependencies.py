"""Workflows at run time: a run's final outcome fires the jobs that run after its job, once."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
import time_machine
from django.db import transaction
from django.utils import timezone

from jobs import services
from jobs.models import Job
from runs import dependencies, execution, outcomes
from runs.executors.base import Outcome
from runs.models import Run
from runs.tasks import execute_job

pytestmark = pytest.mark.django_db
FIRE = "2026-03-02T10:01:00+00:00"
TEST_SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


def make(job_id: str, **extra) -> Job:
    return services.job_create(data={"id": job_id, "url": "http://127.0.0.1:9/", **extra})


def outcome_is(monkeypatch, status: str, **extra) -> None:
    monkeypatch.setattr(execution.executors, "execute", lambda job, **kwargs: Outcome(status=status, **extra))


def deliver(job_id: str, fire: str = FIRE) -> Run:
    execute_job.apply(kwargs={"job_id": job_id, "scheduled_for": fire}, throw=True)
    return Run.objects.get(job_id=job_id, scheduled_for=fire, attempt=1)


def fired(job_id: str) -> list[Run]:
    return list(Run.objects.filter(job_id=job_id, trigger=Run.Trigger.DEPENDENCY).order_by("pk"))


def test_a_success_fires_the_jobs_after_it_on_success_and_finish_and_queues_them_on_commit(
    monkeypatch, queued_tasks, django_capture_on_commit_callbacks
):
    make("a", interval_seconds=60)
    make("b", after=[{"job": "a", "on": "success"}])
    make("c", after=[{"job": "a", "on": "finish"}])
    make("d", after=[{"job": "a", "on": "failure"}])
    outcome_is(monkeypatch, "success", status_code=200)
    with django_capture_on_commit_callbacks(execute=True):
        run = deliver("a")
    (b,), (c,) = fired("b"), fired("c")
    assert fired("d") == []
    assert (b.upstream_run_id, b.status, b.scheduled_for) == (run.pk, "queued", None)
    assert c.upstream_run_id == run.pk
    assert sorted(task["run_id"] for task in queued_tasks) == [b.pk, c.pk]


def test_a_failure_fires_failure_and_finish_only_on_the_final_attempt(
    monkeypatch, queued_tasks, django_capture_on_commit_callbacks
):
    make("a", interval_seconds=60, max_retries=1, retry_backoff_seconds=1)
    make("b", after=[{"job": "a", "on": "success"}])
    make("d", after=[{"job": "a", "on": "failure"}])
    outcome_is(monkeypatch, "failed", error="boom")
    with django_capture_on_commit_callbacks(execute=True):
        deliver("a")
    assert fired("d") == []  # a retry is queued: not the final attempt
    retry = Run.objects.get(job_id="a", attempt=2)
    with django_capture_on_commit_callbacks(execute=True):
        execute_job.apply(kwargs={"job_id": "a", "run_id": retry.pk}, throw=True)
    (d,) = fired("d")
    assert d.upstream_run_id == retry.pk
    assert fired("b") == []


def test_two_deliveries_of_an_upstream_outcome_fire_the_downstream_once(
    monkeypatch, queued_tasks, django_capture_on_commit_callbacks
):
    make("a", interval_seconds=60)
    make("b", after=[{"job": "a", "on": "success"}])
    outcome_is(monkeypatch, "success", status_code=200)
    with django_capture_on_commit_callbacks(execute=True):
        run = deliver("a")
        deliver("a")  # the fire's message again: its claim makes no second run of a
    job = Job.objects.get(pk="a")
    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        outcomes.record(run, job)  # the outcome recorded a second time (a retried store)
        assert dependencies.fire_downstream(run, job) == []
    assert len(fired("b")) == 1
    assert len(queued_tasks) == 1


def test_a_paused_downstream_does_not_fire(monkeypatch, queued_tasks, django_capture_on_commit_callbacks):
    make("a", interval_seconds=60)
    b = make("b", after=[{"job": "a", "on": "success"}])
    services.job_pause(job=b)
    outcome_is(monkeypatch, "success", status_code=200)
    with django_capture_on_commit_callbacks(execute=True):
        deliver("a")
    assert fired("b") == []


def test_a_chain_fires_link_by_link(monkeypatch, queued_tasks, django_capture_on_commit_callbacks):
    make("a", interval_seconds=60)
    make("b", after=[{"job": "a", "on": "success"}])
    make("c", after=[{"job": "b", "on": "finish"}])
    outcome_is(monkeypatch, "success", status_code=200)
    with django_capture_on_commit_callbacks(execute=True):
        deliver("a")
    (b,) = fired("b")
    outcome_is(monkeypatch, "failed", error="boom")
    with django_capture_on_commit_callbacks(execute=True):
        execute_job.apply(kwargs={"job_id": "b", "run_id": b.pk}, throw=True)
    (c,) = fired("c")
    assert c.upstream_run_id == b.pk
    assert Run.objects.get(pk=b.pk).status == "failed"


def test_all_mode_fires_once_every_upstream_has_a_matching_run_within_the_window(
    monkeypatch, queued_tasks, django_capture_on_commit_callbacks
):
    make("a", interval_seconds=60)
    make("b", interval_seconds=60)
    make(
        "c",
        after=[{"job": "a", "on": "success"}, {"job": "b", "on": "success"}],
        after_mode="all",
        after_window_seconds=300,
    )
    outcome_is(monkeypatch, "success", status_code=200)
    start = timezone.now()
    with time_machine.travel(start, tick=False), django_capture_on_commit_callbacks(execute=True):
        deliver("a", "2026-03-02T10:01:00+00:00")
    assert fired("c") == []  # b has not run yet
    with (
        time_machine.travel(start + timedelta(seconds=60), tick=False),
        django_capture_on_commit_callbacks(execute=True),
    ):
        b_run = deliver("b", "2026-03-02T10:01:00+00:00")
    (c,) = fired("c")
    assert c.upstream_run_id == b_run.pk
    # Since c's own run, neither counts again: b alone does not fire it.
    with (
        time_machine.travel(start + timedelta(seconds=120), tick=False),
        django_capture_on_commit_callbacks(execute=True),
    ):
        deliver("b", "2026-03-02T10:02:00+00:00")
    assert len(fired("c")) == 1
    # a runs again, but b's run (at +120 s) is outside the 300 s window by +500 s: no fire.
    with (
        time_machine.travel(start + timedelta(seconds=500), tick=False),
        django_capture_on_commit_callbacks(execute=True),
    ):
        deliver("a", "2026-03-02T10:02:00+00:00")
    assert len(fired("c")) == 1
    # b again within the window of a's run (+500 s): fires.
    with (
        time_machine.travel(start + timedelta(seconds=600), tick=False),
        django_capture_on_commit_callbacks(execute=True),
    ):
        deliver("b", "2026-03-02T10:03:00+00:00")
    assert len(fired("c")) == 2


def test_a_python_downstream_reads_its_upstream_run(monkeypatch, settings, django_capture_on_commit_callbacks):
    settings.CRONTASK_SCRIPTS_DIR = TEST_SCRIPTS
    make("a", interval_seconds=60)
    services.job_create(
        data={
            "id": "py",
            "handler": "scripts:echo_kwargs",
            "handler_kwargs": {
                "count": {"$upstream": "run_id"},
                "label": {"$upstream": "result.name"},
                "tags": [{"$upstream": "result.rows.1"}, {"$upstream": "result.missing"}],
            },
            "after": [{"job": "a", "on": "success"}],
        }
    )
    outcome_is(monkeypatch, "success", result={"name": "report", "rows": [1, 2, 3]})
    with django_capture_on_commit_callbacks(execute=False):  # its message is not sent: it runs here
        run = deliver("a")
    (py,) = fired("py")
    assert py.overrides == {"handler_kwargs": {"count": run.pk, "label": "report", "tags": [2, None]}}
    monkeypatch.undo()  # the real python executor
    settings.CRONTASK_SCRIPTS_DIR = TEST_SCRIPTS
    execute_job.apply(kwargs={"job_id": "py", "run_id": py.pk}, throw=True)
    py.refresh_from_db()
    assert py.status == "success", py.error
    assert py.result == {"count": run.pk, "label": "report", "when": None, "tags": [2, None]}


def test_a_run_no_upstream_fired_gets_none_for_its_upstream_references(settings, django_capture_on_commit_callbacks):
    settings.CRONTASK_SCRIPTS_DIR = TEST_SCRIPTS
    make("a")
    job = services.job_create(
        data={
            "id": "py",
            "handler": "scripts:echo_kwargs",
            "handler_kwargs": {"count": 1, "label": {"$upstream": "run_id"}},
            "after": [{"job": "a", "on": "success"}],
        }
    )
    run = execution.run_in_foreground(job=job)
    assert run.status == "success", run.error
    assert run.result == {"count": 1, "label": None, "when": None, "tags": None}


def test_the_api_lists_dependency_runs_by_trigger_and_upstream_run(api, monkeypatch, queued_tasks):
    make("a", interval_seconds=60)
    make("b", after=[{"job": "a", "on": "success"}])
    outcome_is(monkeypatch, "success", status_code=200)
    run = deliver("a")
    (b,) = fired("b")
    listed = api.get(f"/api/runs/?trigger=dependency&upstream_run={run.pk}").json()["results"]
    assert [(r["id"], r["job"], r["trigger"], r["upstream_run"]) for r in listed] == [(b.pk, "b", "dependency", run.pk)]
    assert api.get(f"/api/runs/{b.pk}/").json()["upstream_run"] == run.pk


def test_a_run_the_reaper_marks_lost_fires_failure_and_finish(monkeypatch, queued_tasks):
    from runs import reaper

    a = make("a", interval_seconds=60)
    make("d", after=[{"job": "a", "on": "failure"}])
    make("c", after=[{"job": "a", "on": "finish"}])
    make("b", after=[{"job": "a", "on": "success"}])
    run = Run.objects.create(
        job=a, trigger="manual", status="running", started_at=timezone.now(), queued_at=timezone.now()
    )
    assert reaper.reap_lost_runs(now=timezone.now() + timedelta(hours=1)) == 1
    assert [r.upstream_run_id for r in fired("d") + fired("c")] == [run.pk, run.pk]
    assert fired("b") == []


def test_an_http_dependency_run_names_its_upstream_run_to_the_target(
    http_target, monkeypatch, django_capture_on_commit_callbacks
):
    services.job_create(data={"id": "a", "interval_seconds": 60, "url": f"{http_target.url}/a"})
    services.job_create(data={"id": "b", "url": f"{http_target.url}/b", "after": [{"job": "a", "on": "success"}]})
    with django_capture_on_commit_callbacks(execute=False):
        run = deliver("a")
    (b,) = fired("b")
    execute_job.apply(kwargs={"job_id": "b", "run_id": b.pk}, throw=True)
    [headers] = [headers for _method, path, headers, _body in http_target.requests if path == "/b"]
    assert headers["X-Crontask-Upstream-Run-Id"] == str(run.pk)


@pytest.mark.parametrize("policy", ["skip", "defer"])
def test_a_dependency_run_in_a_blackout_of_the_downstream_job_is_recorded_skipped_naming_it(
    monkeypatch, queued_tasks, django_capture_on_commit_callbacks, policy
):
    from calendars import services as calendar_services

    cal = calendar_services.calendar_create(
        data={
            "name": "freeze",
            "time_zone": "UTC",
            "windows": [{"start": "2026-03-02T10:00:00", "end": "2026-03-02T11:00:00"}],
        }
    )
    make("a", interval_seconds=60)
    make("b", after=[{"job": "a", "on": "success"}], calendars=[cal.pk], blackout_policy=policy)
    make("c", after=[{"job": "a", "on": "success"}])  # no calendar: fired as ever
    outcome_is(monkeypatch, "success", status_code=200)
    with time_machine.travel("2026-03-02T10:01:01Z", tick=False), django_capture_on_commit_callbacks(execute=True):
        run = deliver("a")
    (b,), (c,) = fired("b"), fired("c")
    assert (b.status, b.upstream_run_id, b.trigger) == ("skipped", run.pk, "dependency")
    assert "calendar 'freeze'" in b.error
    assert b.error.startswith("Blackout: ")
    assert b.finished_at is not None
    assert c.status == "queued"
    assert [task["run_id"] for task in queued_tasks] == [c.pk]  # nothing sent for b
    # The skipped run is the claim: the same outcome delivered again fires nothing more.
    assert dependencies.fire_downstream(run, Job.objects.get(pk="a")) == []
    assert len(fired("b")) == 1
    # After the window, the next upstream run fires b as ever.
    with time_machine.travel("2026-03-02T11:02:01Z", tick=False), django_capture_on_commit_callbacks(execute=True):
        deliver("a", fire="2026-03-02T11:02:00+00:00")
    assert [r.status for r in fired("b")] == ["skipped", "queued"]


def test_a_dependency_run_under_all_in_a_blackout_is_skipped(
    monkeypatch, queued_tasks, django_capture_on_commit_callbacks
):
    from calendars import services as calendar_services

    cal = calendar_services.calendar_create(
        data={"name": "nightly", "time_zone": "UTC", "windows": [{"cron": "0 10 * * *", "duration_seconds": 3600}]}
    )
    make("a", interval_seconds=60)
    make("b", after=[{"job": "a", "on": "success"}], after_mode="all", calendars=[cal.pk])
    outcome_is(monkeypatch, "success", status_code=200)
    with time_machine.travel("2026-03-02T10:01:01Z", tick=False), django_capture_on_commit_callbacks(execute=True):
        deliver("a")
    assert [(r.status, "calendar 'nightly'" in r.error) for r in fired("b")] == [("skipped", True)]
    assert queued_tasks == []


@pytest.mark.django_db(transaction=True)  # as a worker ends runs: in no transaction
def test_a_run_whose_job_has_no_dependents_ends_in_one_statement_on_postgresql(monkeypatch):
    """The run's outcome and the job's counters (two statements where the database has no
    data-modifying WITH queries); whether a job runs after this one is read by the counters'
    UPDATE, not asked apart (most jobs have none). On PostgreSQL that statement is the whole of
    it: no transaction (or savepoint) of its own."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    job = make("alone", interval_seconds=60)
    make("other", interval_seconds=60)
    make("after-other", after=[{"job": "other", "on": "finish"}])  # a dependency, not on this job
    first, run = (
        Run.objects.create(job=job, status=Run.Status.RUNNING, started_at=timezone.now(), queued_at=timezone.now())
        for _ in range(2)
    )
    outcomes.finish(first, Outcome(status="success", status_code=200), job=job)  # the watchers' caches loaded
    with CaptureQueriesContext(connection) as captured:
        outcomes.finish(run, Outcome(status="success", status_code=200), job=job)
    if connection.vendor == "postgresql":
        statements = [" ".join(q["sql"].split()) for q in captured.captured_queries]
        assert len(statements) == 1
        assert statements[0].startswith('WITH ended AS (UPDATE "runs_run" SET')
        assert "NOT EXISTS (SELECT 1 FROM jobs_jobdependency WHERE upstream_id = " in statements[0]
        assert "counted AS ( UPDATE jobs_job SET" in statements[0]
    else:
        statements = [" ".join(q["sql"].split()) for q in captured.captured_queries]
        statements = [sql for sql in statements if not sql.startswith(("BEGIN", "COMMIT", "SAVEPOINT", "RELEASE"))]
        assert [sql.split()[:2] for sql in statements] == [["UPDATE", '"runs_run"'], ["UPDATE", "jobs_job"]]
    run.refresh_from_db()
    job.refresh_from_db()
    assert (run.status, run.status_code, job.run_count, job.success_count) == ("success", 200, 2, 2)
    assert fired("after-other") == []


@pytest.mark.django_db(transaction=True)  # as a worker ends runs: in no transaction
def test_a_run_whose_end_must_do_more_is_ended_in_a_transaction_with_it(monkeypatch, queued_tasks):
    """A run whose job has dependents (found by the ending statement itself), whose fire is tried
    again, whose job is a one-off, or whose job an alert rule watches, is ended in one transaction
    with what its end does (the downstream run, the retry, the job completed, the incident):
    counted once, each done once."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from alerts import delivery
    from alerts.models import AlertRule, Incident
    from alerts.selectors import rules_changed
    from alerts.services import channel_create

    notified: list[int] = []
    monkeypatch.setattr(delivery, "queue", lambda notification_id, *, attempt: notified.append(notification_id))

    def end(job: Job, status: str, trigger: str = Run.Trigger.SCHEDULED) -> list[str]:
        """End a run of ``job`` ``status``; the ending statements (PostgreSQL), each checked to be
        in a transaction (the outcome's) or not (the statement alone)."""
        now = timezone.now()
        run = Run.objects.create(job=job, trigger=trigger, status=Run.Status.RUNNING, started_at=now, queued_at=now)
        with CaptureQueriesContext(connection) as captured:
            outcomes.finish(run, Outcome(status=status, status_code=200 if status == "success" else 500), job=job)
        run.refresh_from_db()
        assert run.status == status
        shapes, begun = [], False
        for query in captured.captured_queries:
            sql = " ".join(query["sql"].split())
            begun = (begun or sql == "BEGIN") and sql != "COMMIT"
            if sql.startswith("WITH ended AS"):
                shapes.append("alone" if "NOT EXISTS (SELECT 1 FROM jobs_jobdependency" in sql else "in a transaction")
                assert begun == (shapes[-1] == "in a transaction"), captured.captured_queries
        return shapes if connection.vendor == "postgresql" else []

    postgresql = connection.vendor == "postgresql"
    upstream = make("upstream", interval_seconds=60)
    make("downstream", after=[{"job": "upstream", "on": "success"}])
    # The statement alone does not end it (the job has dependents): then the whole way.
    assert end(upstream, "success") == (["alone", "in a transaction"] if postgresql else [])
    assert len(fired("downstream")) == 1
    assert len(queued_tasks) == 1  # the downstream run's message, on commit
    upstream.refresh_from_db()
    assert (upstream.run_count, upstream.success_count) == (1, 1)

    retried = make("retried", interval_seconds=60, max_retries=2)
    assert end(retried, "failed") == (["in a transaction"] if postgresql else [])
    assert Run.objects.filter(job=retried, trigger=Run.Trigger.RETRY).count() == 1

    one_off = make("one-off", run_at="2099-01-01T00:00:00Z")
    Job.objects.filter(pk=one_off.pk).update(next_run_at=None)  # its fire claimed, as beat leaves it
    assert end(one_off, "success") == (["in a transaction"] if postgresql else [])
    one_off.refresh_from_db()
    assert one_off.status == Job.Status.COMPLETED

    watched = make("watched", interval_seconds=60)
    channel = channel_create(data={"name": "ops", "kind": "slack", "target": "https://hooks.example.com/x"})
    rule = AlertRule.objects.create(name="failed", event="failed")
    rule.channels.add(channel)
    rule.jobs.add(watched)
    rules_changed()
    assert end(watched, "failed") == (["in a transaction"] if postgresql else [])
    assert Incident.objects.filter(job=watched).count() == 1
    assert len(notified) == 1
    watched.refresh_from_db()
    assert (watched.run_count, watched.failure_count) == (1, 1)

    plain = make("plain", interval_seconds=60)
    assert end(plain, "failed") == (["alone"] if postgresql else [])  # no retry, no rule, no dependents


def test_the_counters_update_says_whether_the_job_has_dependents(monkeypatch, queued_tasks):
    """A dependency added after the job's earlier runs is seen at its next run."""
    make("a", interval_seconds=60)
    outcome_is(monkeypatch, "success", status_code=200)
    deliver("a")
    make("b", after=[{"job": "a", "on": "success"}])
    run = deliver("a", "2026-03-02T10:02:00+00:00")
    [b] = fired("b")
    assert b.upstream_run_id == run.pk
