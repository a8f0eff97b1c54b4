"""A worker whose database connection is terminated (pg_terminate_backend on its own connection)
in the middle of a claim or of storing an outcome: the step is made again on a new connection, a
call is made once, and its outcome is recorded as it was, never as failed, lost or retried."""

from __future__ import annotations

from datetime import datetime
from types import SimpleNamespace

import pytest
from django.db import OperationalError, connection

from jobs import services as job_services
from jobs.models import Job
from runs import claims, execution, outcomes, policies
from runs.models import Run
from runs.tasks import execute_job
from scheduling import outbox
from scheduling.fires import Fire

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="terminates its own PostgreSQL connection"),
]

FIRE = "2026-03-02T10:01:00+00:00"


def terminate_own_connection() -> None:
    """What a database restart or a failover does to a worker's connection, mid-transaction."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(pg_backend_pid())")


def cut_once(monkeypatch, module, name: str, *, after: bool) -> list[int]:
    """Make ``module.name`` lose its connection the first time it is called: before it does its
    work, or ``after`` it (its transaction committed, but the answer never came)."""
    real = getattr(module, name)
    calls = []

    def step(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1 and not after:
            terminate_own_connection()
        result = real(*args, **kwargs)
        if len(calls) == 1 and after:
            connection.close()
            raise OperationalError("server closed the connection unexpectedly")
        return result

    monkeypatch.setattr(module, name, step)
    return calls


def make_job(url: str, **extra) -> Job:
    job = job_services.job_create(data={"id": "j", "interval_seconds": 60, "url": url, **extra})
    outbox.record_fires([Fire("j", datetime.fromisoformat(FIRE), "http")], now=job.created_at)
    return job


def deliver(task_id: str = "task-1") -> None:
    execute_job.apply(kwargs={"job_id": "j", "scheduled_for": FIRE}, task_id=task_id, throw=True)


@pytest.mark.parametrize("after", [False, True], ids=["lost-before-commit", "lost-after-commit"])
def test_a_claim_cut_off_from_the_database_is_made_again_and_the_fire_runs_once(http_target, monkeypatch, after):
    make_job(f"{http_target.url}/ok")
    attempts = cut_once(monkeypatch, claims, "claim_fire", after=after)
    deliver()
    assert len(attempts) == 2
    run = Run.objects.get()
    assert (run.status, run.attempt) == ("success", 1)
    assert http_target.hits["/ok"] == 1
    assert Job.objects.get().run_count == 1


def test_the_same_message_delivered_again_to_the_same_process_is_not_run_again(http_target):
    make_job(f"{http_target.url}/ok")
    deliver("same-task")
    deliver("same-task")
    assert http_target.hits["/ok"] == 1
    assert Run.objects.get().status == "success"


@pytest.mark.parametrize("after", [False, True], ids=["lost-before-commit", "lost-after-commit"])
def test_an_outcome_cut_off_from_the_database_is_stored_as_it_was_and_not_retried(http_target, monkeypatch, after):
    make_job(f"{http_target.url}/ok", max_retries=1)
    attempts = cut_once(monkeypatch, outcomes, "_store_outcome", after=after)
    deliver()
    assert len(attempts) == 2
    run = Run.objects.get()
    assert (run.status, run.status_code, run.error) == ("success", 200, "")
    job = Job.objects.get()
    assert (job.run_count, job.success_count, job.failure_count) == (1, 1, 0)
    assert http_target.hits["/ok"] == 1


def test_a_failed_call_whose_outcome_was_cut_off_is_retried_once(http_target, monkeypatch, queued_tasks):
    make_job(f"{http_target.url}/status/500", max_retries=1)
    cut_once(monkeypatch, outcomes, "_store_outcome", after=True)
    deliver()
    assert sorted(Run.objects.values_list("attempt", "status")) == [(1, "failed"), (2, "queued")]
    assert Job.objects.get().failure_count == 1


def test_an_outcome_the_database_never_takes_leaves_the_run_to_the_reaper_and_queues_no_retry(
    http_target, monkeypatch, settings
):
    settings.CRONTASK_LOST_GRACE_SECONDS = 1
    make_job(f"{http_target.url}/ok", max_retries=1, timeout_seconds=1)
    real = outcomes._store_outcome

    def unreachable(*args, **kwargs):
        terminate_own_connection()
        return real(*args, **kwargs)

    monkeypatch.setattr(outcomes, "_store_outcome", unreachable)
    with pytest.raises(OperationalError):
        deliver()
    connection.close()  # what the worker does after a task (close_old_database_connections)
    assert list(Run.objects.values_list("attempt", "status")) == [(1, "running")]  # the reaper's, later
    assert http_target.hits["/ok"] == 1


def test_a_claim_the_database_keeps_refusing_is_given_back_to_the_broker(monkeypatch):
    make_job("http://127.0.0.1:9/")
    monkeypatch.setattr(policies, "CLAIM_RETRY_SECONDS", 0.3)
    real = claims.claim_fire
    tries = []

    def unreachable(**kwargs):
        tries.append(1)
        terminate_own_connection()
        return real(**kwargs)

    monkeypatch.setattr(claims, "claim_fire", unreachable)
    with pytest.raises(execution.ClaimFailed):
        execution.run_execute(job_id="j", scheduled_for=datetime.fromisoformat(FIRE))
    connection.close()
    assert len(tries) >= 2  # tried again on new connections first
    # The task asks Celery to deliver it again (here, eagerly: each retry runs at once).
    sent = []

    def claim_failed(**kwargs) -> None:
        sent.append(1)
        real_claim_failed()

    monkeypatch.setattr(execution, "run_execute", claim_failed)
    result = execute_job.apply(kwargs={"job_id": "j", "scheduled_for": FIRE})
    assert len(sent) == 1 + execute_job_retries()
    assert isinstance(result.result, execution.ClaimFailed)
    assert Run.objects.get().status == "queued"  # untouched: beat sends it again as well


def real_claim_failed():
    raise execution.ClaimFailed("could not claim a run of job j: OperationalError: terminated", "w pid=1")


def execute_job_retries() -> int:
    from runs.tasks import CLAIM_RETRIES

    return CLAIM_RETRIES["max_retries"]


def test_an_outcome_the_database_refuses_as_it_is_is_not_retried(monkeypatch, queued_tasks):
    from runs.executors.base import Outcome

    make_job("http://127.0.0.1:9/", max_retries=1)
    # A negative status code breaks a CHECK constraint: the call was made, its outcome cannot be stored.
    monkeypatch.setattr(execution.executors, "execute", lambda *a, **k: Outcome(status="success", status_code=-1))
    monkeypatch.setattr(
        execution.executors, "prepare", lambda *a, **k: lambda: Outcome(status="success", status_code=-1)
    )
    deliver()
    run = Run.objects.get()
    assert run.status == "failed"
    assert run.error.startswith("The run ended success, but its outcome could not be stored (IntegrityError: ")
    assert queued_tasks == []  # the call was made: it is not made again


def test_a_delivery_retried_after_an_unknown_claim_takes_its_run_over_and_runs_it_once(http_target, monkeypatch):
    """The claim reached the database but its answer did not, and the database stayed away until
    the worker gave up: the run is claimed, by nobody running it. Celery delivers the message
    again (here to another worker process), naming the worker that gave up; that copy takes the
    run over, and runs it once."""
    make_job(f"{http_target.url}/ok")
    monkeypatch.setattr(policies, "CLAIM_RETRY_SECONDS", 0.3)
    pids = iter([1001, 1002])  # the first delivery's worker process, then the retry's
    monkeypatch.setattr(execution, "os", SimpleNamespace(getpid=lambda: next(pids)))
    real = claims.claim_fire
    calls = []

    def unknown_then_unreachable(**kwargs):
        calls.append(kwargs["by"].retrying)
        if len(calls) == 1:  # committed, but the answer never came
            real(**kwargs)
            connection.close()
            raise OperationalError("server closed the connection unexpectedly")
        if not kwargs["by"].retrying:  # then the database is away until this delivery gives up
            terminate_own_connection()
        return real(**kwargs)

    monkeypatch.setattr(claims, "claim_fire", unknown_then_unreachable)
    result = execute_job.apply(kwargs={"job_id": "j", "scheduled_for": FIRE}, task_id="task-1")
    assert result.successful(), result.result  # after one retry of its own (eager here: at once)
    assert [worker.split()[-1] for worker in calls[-1]] == ["pid=1001"]  # it named the worker that gave up
    connection.close()
    run = Run.objects.get()
    assert (run.status, run.worker.split()[-1], http_target.hits["/ok"]) == ("success", "pid=1002", 1)
    assert Job.objects.get().run_count == 1


def test_an_outcome_whose_transaction_lost_its_connection_inside_a_watcher_is_stored_again(
    http_target, monkeypatch, queued_tasks
):
    """The alert rules are read inside the outcome's transaction, in a savepoint whose failure is
    logged and passed over (``alerts.selectors.enabled_rules``). With the connection gone the
    savepoint cannot be undone: the transaction can only roll back. The outcome must then be
    stored again, not reported stored and left ``running`` for the reaper (seen in the
    end-to-end test that cuts the database's connections). The job retries a failed run, so its
    end goes in a transaction (``runs.outcomes._alone``) and the rules are first read there."""
    from alerts import selectors

    make_job(f"{http_target.url}/status/500", max_retries=1)
    real = selectors.load_enabled_rules
    reads: list[int] = []

    def rules_then_cut():
        reads.append(1)
        if len(reads) == 1:
            terminate_own_connection()
        return real()

    monkeypatch.setattr(selectors, "load_enabled_rules", rules_then_cut)
    monkeypatch.setattr(selectors._cache, "rules", None)  # read at this run's end, not from the cache
    deliver()
    run = Run.objects.get(attempt=1)
    assert (run.status, run.status_code) == ("failed", 500)
    assert len(reads) >= 2  # the outcome's transaction was made again, the rules read again
    job = Job.objects.get()
    assert (job.run_count, job.failure_count) == (1, 1)
    assert Run.objects.filter(trigger=Run.Trigger.RETRY).count() == 1  # queued once, with the outcome
    assert len(queued_tasks) == 1
