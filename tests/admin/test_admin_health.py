"""runs.health: each job's state from its runs and schedule, the same in the list, its filter and
the counts; a job failing every run is never shown green."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from heartbeats.services import BEAT, record_heartbeat
from jobs import services
from jobs.models import Job
from runs import health

pytestmark = pytest.mark.django_db
URL = "http://127.0.0.1:9/"


def make(job_id: str, **state) -> Job:
    services.job_create(data={"id": job_id, "interval_seconds": 600, "url": URL})
    Job.objects.filter(pk=job_id).update(**state)
    return Job.objects.get(pk=job_id)


def states(now=None) -> dict[str, str]:
    return dict(health.with_health(Job.objects.all(), now=now).values_list("pk", "health"))


@pytest.fixture
def beat_seen():
    record_heartbeat(BEAT)


def test_it_names_each_state(beat_seen):
    now = timezone.now()
    make("ok", last_run_status="success", last_run_at=now, run_count=3, next_run_at=now + timedelta(minutes=5))
    make("bad", last_run_status="failed", last_run_at=now, run_count=24, failure_count=24)
    make("slow", last_run_status="timeout", last_run_at=now)
    make("gone", last_run_status="lost", last_run_at=now)
    make("new")
    make("resting", status="paused", last_run_status="failed", last_run_at=now)
    make("overdue", last_run_status="success", last_run_at=now, next_run_at=now - timedelta(minutes=5))
    make("skipped-last", last_run_status="skipped", last_run_at=now)
    assert states() == {
        "ok": "healthy", "bad": "failing", "slow": "failing", "gone": "failing", "new": "never_run",
        "resting": "paused", "overdue": "late", "skipped-last": "healthy",
    }  # fmt: skip


def test_late_means_overdue_by_more_than_the_jobs_grace(beat_seen):
    now = timezone.now()
    make("default-grace", next_run_at=now - timedelta(seconds=30))  # within the default 60 s
    make("own-grace", next_run_at=now - timedelta(seconds=30), misfire_grace_seconds=10)
    make("long-grace", next_run_at=now - timedelta(seconds=300), misfire_grace_seconds=600)
    assert states(now) == {"default-grace": "never_run", "own-grace": "late", "long-grace": "never_run"}


def test_every_scheduled_job_is_late_while_beat_is_not_seen():
    now = timezone.now()
    make("scheduled", last_run_status="success", last_run_at=now, next_run_at=now + timedelta(minutes=5))
    manual = services.job_create(data={"id": "by-hand", "url": URL})
    Job.objects.filter(pk=manual.pk).update(last_run_status="success", last_run_at=now)
    record_heartbeat(BEAT, now=now - timedelta(minutes=5))
    assert states(now) == {"scheduled": "late", "by-hand": "healthy"}


def test_counts_and_failing_jobs_first(beat_seen):
    now = timezone.now()
    make("a", last_run_status="failed", last_run_at=now - timedelta(minutes=5))
    make("b", last_run_status="failed", last_run_at=now)
    make("c", last_run_status="success", last_run_at=now)
    counts = health.health_counts()
    assert list(counts) == list(health.STATES)
    assert counts == {"failing": 2, "late": 0, "healthy": 1, "never_run": 0, "paused": 0}
    assert [job.pk for job in health.failing_jobs()] == ["b", "a"]


def test_a_job_failing_every_run_shows_a_red_badge_in_the_list_and_the_filter_finds_it(staff, beat_seen):
    now = timezone.now()
    make("flaky", last_run_status="failed", last_run_at=now, run_count=24, failure_count=24)
    make("fine", last_run_status="success", last_run_at=now, run_count=3, success_count=3)
    page = staff.get("/admin/jobs/job/").content.decode()
    row = page[page.index("flaky") :].split("</tr>")[0]
    assert "background:#c62828" in row  # red
    assert "#2e7d32" not in row  # no green badge anywhere in the row
    failing = staff.get("/admin/jobs/job/?health=failing").content.decode()
    assert "flaky" in failing
    assert "/admin/jobs/job/fine/change/" not in failing
    index = staff.get("/admin/").content.decode()
    assert 'id="ct-failing-jobs"' in index
    assert "24 of 24 runs failed" in index
