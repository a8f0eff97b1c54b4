"""A run's stored output never quotes its job's secrets: they are masked as the outcome is stored
(and as each log line is, since the log is stored while the run goes on)."""

from __future__ import annotations

import pytest

from jobs import services as job_services
from jobs.secrets import MASK
from runs import execution
from runs.executors.base import Outcome
from runs.models import Run
from runs.tasks import execute_job

pytestmark = pytest.mark.django_db

FIRE = "2026-03-02T10:01:00+00:00"
SECRET = "url-pass-0003"


def deliver() -> Run:
    execute_job.apply(kwargs={"job_id": "j", "scheduled_for": FIRE}, throw=True)
    return Run.objects.get(job_id="j")


@pytest.fixture
def job():
    return job_services.job_create(
        data={
            "id": "j",
            "interval_seconds": 60,
            "url": f"https://bot:{SECRET}@example.com/?page=1",
            "headers": {"X-Session": "Bearer session-token-42"},
        }
    )


def test_every_output_field_is_stored_with_the_jobs_secrets_masked(monkeypatch, job):
    quoted = f"user bot, password {SECRET}, session Bearer session-token-42"
    outcome = Outcome(
        status="failed",
        response_body=quoted,
        output=quoted,
        result={"said": quoted, SECRET: [quoted]},
        error=quoted,
        traceback=quoted,
    )
    monkeypatch.setattr(execution.executors, "execute", lambda job, **kwargs: outcome)
    run = deliver()
    masked = f"user bot, password {MASK}, session {MASK}"
    assert (run.response_body, run.output, run.error, run.traceback) == (masked,) * 4
    assert run.result == {"said": masked, MASK: [masked]}


def test_a_log_line_is_masked_before_it_is_stored_while_the_run_goes_on(monkeypatch, job):
    monkeypatch.setattr(execution.RunProgress, "FLUSH_EVERY", 0)
    seen = []

    def execute(job, *, progress, **kwargs):
        progress.log(f"trying session-token-42 and {SECRET}")
        seen.append(Run.objects.get(job_id="j").log_output)  # what a reader sees meanwhile
        return Outcome(status="success")

    monkeypatch.setattr(execution.executors, "execute", execute)
    run = deliver()
    assert seen == [f"trying {MASK} and {MASK}"]
    assert run.log_output == f"trying {MASK} and {MASK}"
