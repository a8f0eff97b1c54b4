"""Pause until: a job paused with a time to come back is resumed by beat then, through the
services (audited as the system), and catches up on what fell due by its misfire policy."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.core.exceptions import ValidationError

from audit.models import AuditEntry
from jobs import services
from jobs.models import Job
from runs.models import Run
from scheduling import fires

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 6, 1, 12, 0, 0, tzinfo=UTC)
HOURLY = {"id": "hourly", "cron": "0 * * * *", "url": "http://127.0.0.1:9/"}


def make(data=HOURLY) -> Job:
    with time_machine.travel(T0 - timedelta(minutes=50), tick=False):
        return services.job_create(data=data)


def test_pause_until_sets_the_time_and_refuses_the_past():
    job = make()
    with time_machine.travel(T0, tick=False):
        with pytest.raises(ValidationError) as refused:
            services.job_pause(job=job, until=T0 - timedelta(seconds=1))
        assert "until" in refused.value.message_dict
        paused = services.job_pause(job=job, until=T0 + timedelta(hours=2))
    assert (paused.status, paused.paused_until, paused.next_run_at) == ("paused", T0 + timedelta(hours=2), None)
    entry = AuditEntry.objects.filter(job_id="hourly", action="pause").get()
    assert entry.details == {"until": (T0 + timedelta(hours=2)).isoformat()}


def test_beat_resumes_the_job_at_its_time_as_the_system(make_beat):
    job = make()
    with time_machine.travel(T0 + timedelta(minutes=5), tick=False):
        services.job_pause(job=job, until=T0 + timedelta(hours=2, minutes=30))
    scheduler = make_beat()
    sent: list = []
    scheduler.publish = sent.extend
    with time_machine.travel(T0 + timedelta(hours=2, minutes=29), tick=False):
        scheduler.fire_due_jobs()
    assert Job.objects.get(pk="hourly").status == "paused"
    scheduler._resume_next = 0.0
    with time_machine.travel(T0 + timedelta(hours=2, minutes=30, seconds=1), tick=False):
        scheduler.fire_due_jobs()
    job = Job.objects.get(pk="hourly")
    assert (job.status, job.paused_until, job.next_run_at) == ("active", None, T0 + timedelta(hours=3))
    entry = AuditEntry.objects.filter(job_id="hourly", action="resume").get()
    assert (entry.source, entry.actor) == ("system", "system")
    # 13:00 and 14:00 fell due while it was paused: the latest, 14:00, was claimed as it came back
    assert [f.scheduled_for for f in sent] == [T0 + timedelta(hours=2)]
    assert list(Run.objects.values_list("scheduled_for", flat=True)) == [T0 + timedelta(hours=2)]


def test_nothing_fell_due_nothing_is_caught_up(make_beat):
    job = make()
    with time_machine.travel(T0 + timedelta(minutes=5), tick=False):
        services.job_pause(job=job, until=T0 + timedelta(minutes=20))
    scheduler = make_beat()
    scheduler.publish = lambda fires: None
    with time_machine.travel(T0 + timedelta(minutes=20), tick=False):
        scheduler.fire_due_jobs()
    assert Job.objects.get(pk="hourly").next_run_at == T0 + timedelta(hours=1)
    assert not Run.objects.exists()


def test_a_manual_resume_clears_the_until():
    job = make()
    with time_machine.travel(T0, tick=False):
        services.job_pause(job=job, until=T0 + timedelta(days=1))
        resumed = services.job_resume(job=job)
    assert (resumed.status, resumed.paused_until) == ("active", None)
    assert services.job_resume_due(now=T0 + timedelta(days=2)) == []


def test_api_pause_until_and_its_400s(api):
    assert api.post("/api/jobs/", HOURLY, format="json").status_code == 201
    future = (datetime.now(UTC) + timedelta(days=1)).replace(microsecond=0)
    response = api.post("/api/jobs/hourly/pause/", {"until": future.isoformat()}, format="json")
    assert response.status_code == 200, response.json()
    assert response.json()["status"] == "paused"
    assert datetime.fromisoformat(response.json()["paused_until"]) == future
    past = api.post("/api/jobs/hourly/pause/", {"until": "2020-01-01T00:00:00Z"}, format="json")
    assert past.status_code == 400
    assert "future" in past.json()["until"][0]
    bad = api.post("/api/jobs/hourly/pause/", {"until": "next tuesday"}, format="json")
    assert bad.status_code == 400
    assert "until" in bad.json()
    # no body: paused with no time to come back
    assert api.post("/api/jobs/hourly/pause/").json()["paused_until"] is None


def test_api_bulk_pause_until(api):
    for n in (1, 2):
        assert api.post("/api/jobs/", {**HOURLY, "id": f"h{n}"}, format="json").status_code == 201
    future = (datetime.now(UTC) + timedelta(hours=3)).replace(microsecond=0)
    response = api.post(
        "/api/jobs/bulk/", {"action": "pause", "ids": ["h1", "h2"], "until": future.isoformat()}, format="json"
    )
    assert response.status_code == 200, response.json()
    assert all(r["ok"] for r in response.json()["results"])
    assert set(Job.objects.values_list("paused_until", flat=True)) == {future}
    past = api.post(
        "/api/jobs/bulk/", {"action": "pause", "ids": ["h1"], "until": "2020-01-01T00:00:00Z"}, format="json"
    )
    assert past.status_code == 400
    assert "until" in past.json()
    wrong = api.post("/api/jobs/bulk/", {"action": "resume", "ids": ["h1"], "until": future.isoformat()}, format="json")
    assert wrong.status_code == 400
    assert "until" in wrong.json()


def test_fires_next_due_ignores_paused_jobs():
    job = make()
    with time_machine.travel(T0, tick=False):
        services.job_pause(job=job, until=T0 + timedelta(hours=1))
    assert fires.next_due_at() is None


def test_an_update_that_resumes_the_job_clears_the_until():
    job = make()
    with time_machine.travel(T0, tick=False):
        services.job_pause(job=job, until=T0 + timedelta(days=1))
        resumed = services.job_update(job=job, data={"status": "active"})
    assert (resumed.status, resumed.paused_until) == ("active", None)
    assert Job.objects.get(pk="hourly").paused_until is None


@pytest.mark.parametrize(("grace", "status"), [(None, "success"), (60, "skipped")])
def test_the_fire_caught_up_on_follows_the_misfire_policy(make_beat, http_target, grace, status):
    """Back at 14:30, the 14:00 fire that fell due while paused runs late, or, past a 60 s grace,
    is recorded skipped as a misfire."""
    from runs.tasks import execute_job

    make({**HOURLY, "url": f"{http_target.url}/", "misfire_grace_seconds": grace})
    with time_machine.travel(T0 + timedelta(minutes=5), tick=False):
        services.job_pause(job=Job.objects.get(pk="hourly"), until=T0 + timedelta(hours=2, minutes=30))
    scheduler = make_beat()
    sent: list = []
    scheduler.publish = sent.extend
    back = T0 + timedelta(hours=2, minutes=30, seconds=1)
    with time_machine.travel(back, tick=False):
        scheduler.fire_due_jobs()
        [fire] = sent
        execute_job.apply(kwargs={"job_id": fire.job_id, "scheduled_for": fire.scheduled_for.isoformat()}, throw=True)
    run = Run.objects.get()
    assert (run.scheduled_for, run.status) == (T0 + timedelta(hours=2), status)
    if status == "skipped":
        assert run.error.startswith("Misfire: started 1801.0 s after its scheduled time")
