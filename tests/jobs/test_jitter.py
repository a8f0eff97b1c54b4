"""Jitter: every fire of a job moved by the same offset in [0, jitter), derived from its id."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from jobs import services
from jobs.triggers import Schedule, jitter_offset
from scheduling import fires

T0 = datetime(2026, 6, 1, 12, 0, 0, tzinfo=UTC)
PING = {"url": "http://127.0.0.1:9/"}


def test_it_derives_a_stable_offset_within_the_jitter():
    offsets = {jitter_offset(f"job-{n}", 600) for n in range(500)}
    assert all(0 <= offset < 600 for offset in offsets)
    assert len(offsets) > 300  # spread, not bunched
    assert jitter_offset("billing", 600) == jitter_offset("billing", 600) == 79  # same on every process
    assert jitter_offset("billing", 0) == 0


def test_cron_fires_are_moved_by_the_offset_and_stay_on_their_period():
    s = Schedule(trigger="cron", cron="0 * * * *", timezone="UTC", offset_seconds=90)
    first = s.first_fire(T0)
    assert first == T0 + timedelta(seconds=90)
    # the fire after the moved one is the next hour's, moved the same
    assert s.next_fire(first, first + timedelta(milliseconds=2)) == T0 + timedelta(hours=1, seconds=90)
    # a job resumed inside its offset still fires this hour's moved fire
    assert s.first_fire(T0 + timedelta(seconds=30)) == T0 + timedelta(seconds=90)
    assert list(s.missed(first, T0 + timedelta(hours=3, seconds=100), limit=10)) == [
        T0 + timedelta(hours=h, seconds=90) for h in (1, 2, 3)
    ]


def test_interval_fires_are_moved_once():
    s = Schedule(trigger="interval", interval_seconds=60, timezone="UTC", offset_seconds=7)
    first = s.first_fire(T0)
    assert first == T0 + timedelta(seconds=67)
    assert s.next_fire(first, first) == first + timedelta(seconds=60)


@pytest.mark.django_db
def test_beat_fires_a_jittered_job_at_its_moved_times(make_beat):
    with time_machine.travel(T0, tick=False):
        job = services.job_create(data={"id": "spread", "cron": "*/10 * * * *", "jitter_seconds": 300, **PING})
    offset = timedelta(seconds=jitter_offset("spread", 300))
    assert job.next_run_at == T0 + offset  # 12:00's fire, moved: still ahead
    scheduler = make_beat()
    fired: list[datetime] = []
    scheduler.publish = lambda batch: fired.extend(f.scheduled_for for f in batch)
    for _ in range(3):
        due = fires.next_due_at()
        assert due is not None
        with time_machine.travel(due + timedelta(milliseconds=3), tick=False):
            scheduler.fire_due_jobs()
    assert fired == [T0 + timedelta(minutes=m) + offset for m in (0, 10, 20)]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"cron": "*/5 * * * *", "jitter_seconds": 300}, "shortest time between two fires of the cron (300 s)"),
        ({"cron": "0 9,10 * * *", "jitter_seconds": 3600}, "(3600 s)"),
        ({"interval_seconds": 60, "jitter_seconds": 60}, "less than the interval (60 s)"),
        ({"cron": "0 0 * * *", "jitter_seconds": 3601}, "less than or equal to 3600"),
        ({"jitter_seconds": 5}, "a manual job has none to move"),
    ],
)
def test_api_refuses_a_jitter_out_of_bounds(api, data, message):
    response = api.post("/api/jobs/", {"id": "j", **PING, **data}, format="json")
    assert response.status_code == 400, response.json()
    assert message in " ".join(response.json()["jitter_seconds"])


@pytest.mark.django_db
def test_api_takes_jitter_and_dst_policy(api):
    response = api.post(
        "/api/jobs/",
        {"id": "j", **PING, "cron": "0 2 * * *", "jitter_seconds": 1800, "dst_policy": "skip_twice"},
        format="json",
    )
    assert response.status_code == 201, response.json()
    assert (response.json()["jitter_seconds"], response.json()["dst_policy"]) == (1800, "skip_twice")
    bad = api.patch("/api/jobs/j/", {"dst_policy": "sometimes"}, format="json")
    assert bad.status_code == 400
    assert "dst_policy" in bad.json()


@pytest.mark.django_db
def test_jitter_and_dst_policy_are_versioned_and_exported(tmp_path):
    from io import StringIO

    from django.core.management import call_command

    from jobs.importer import export_job
    from jobs.models import Job, JobVersion

    job = services.job_create(data={"id": "v", "cron": "0 2 * * *", **PING})
    services.job_update(job=job, data={"jitter_seconds": 120, "dst_policy": "skip_once"})
    latest = JobVersion.objects.filter(job_id="v").order_by("-number").first()
    assert latest is not None
    assert sorted(latest.changed_fields) == ["dst_policy", "jitter_seconds"]
    assert (latest.definition["jitter_seconds"], latest.definition["dst_policy"]) == (120, "skip_once")

    exported = export_job(Job.objects.get(pk="v"))
    assert (exported["jitter_seconds"], exported["dst_policy"]) == (120, "skip_once")
    Job.objects.all().delete()
    path = tmp_path / "jobs.json"
    import json

    path.write_text(json.dumps([exported], default=str))
    call_command("import_jobs", str(path), stdout=StringIO())
    again = Job.objects.get(pk="v")
    assert (again.jitter_seconds, again.dst_policy) == (120, "skip_once")
