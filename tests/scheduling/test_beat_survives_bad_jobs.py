"""Beat goes on whatever one job or calendar holds: a paused-until job whose schedule cannot be
computed, a calendar whose windows cannot be read; and a one-off whose one fire a blackout skipped
is completed as one a misfire skipped. (Found by review: each stopped every claim, or left a job
active forever.)"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from calendars import services as calendar_services
from calendars.models import Calendar
from jobs import services
from jobs.models import Job
from jobs.triggers import Schedule
from runs.models import Run
from scheduling import blackouts

URL = "http://127.0.0.1:9/"
T0 = datetime(2026, 6, 6, 0, 0, tzinfo=UTC)


@pytest.mark.django_db(transaction=True)
def test_a_paused_until_job_that_cannot_resume_stays_paused_and_stops_nothing(make_beat):
    with time_machine.travel(T0, tick=False):
        services.job_create(data={"id": "healthy", "interval_seconds": 60, "url": URL})
        bad = services.job_create(data={"id": "bad", "cron": "0 * * * *", "url": URL})
        services.job_pause(job=bad, until=T0 + timedelta(minutes=5))
    Job.objects.filter(pk="bad").update(cron="61 * * * *")  # written around the services
    scheduler = make_beat()
    scheduler.publish = lambda batch: None
    with time_machine.travel(T0 + timedelta(minutes=10), tick=False):
        scheduler.fire_due_jobs()
        scheduler.fire_due_jobs()
    assert Run.objects.filter(job_id="healthy").count() >= 1
    bad = Job.objects.get(pk="bad")
    assert (bad.status, bad.paused_until) == (Job.Status.PAUSED, None)  # not tried again every second


@pytest.mark.django_db(transaction=True)
def test_a_calendar_beat_cannot_read_holds_back_nothing_and_stops_nothing(make_beat, monkeypatch):
    calendar = calendar_services.calendar_create(
        data={
            "name": "b",
            "time_zone": "UTC",
            "windows": [{"start": "2026-06-06T00:00:00", "end": "2026-06-06T02:00:00"}],
        }
    )
    with time_machine.travel(T0, tick=False):
        services.job_create(data={"id": "cal", "interval_seconds": 60, "url": URL, "calendars": [calendar.pk]})
        services.job_create(data={"id": "plain", "interval_seconds": 60, "url": URL})

    def broken(windows, at):
        raise ValueError("a window's maths failed")

    monkeypatch.setattr(blackouts, "blackout_at", broken)
    scheduler = make_beat()
    scheduler.publish = lambda batch: None
    with time_machine.travel(T0 + timedelta(minutes=1, seconds=1), tick=False):
        scheduler.fire_due_jobs()
    assert {run.job_id: run.status for run in Run.objects.all()} == {"cal": "queued", "plain": "queued"}


@pytest.mark.django_db(transaction=True)
def test_a_one_off_whose_fire_a_blackout_skipped_is_completed(make_beat):
    calendar = calendar_services.calendar_create(
        data={
            "name": "b",
            "time_zone": "UTC",
            "windows": [{"start": "2026-06-06T00:00:00", "end": "2026-06-06T02:00:00"}],
        }
    )
    with time_machine.travel(T0 - timedelta(hours=1), tick=False):
        services.job_create(
            data={"id": "once", "run_at": (T0 + timedelta(hours=1)).isoformat(), "url": URL, "calendars": [calendar.pk]}
        )
    scheduler = make_beat()
    scheduler.publish = lambda batch: None
    with time_machine.travel(T0 + timedelta(hours=1, seconds=1), tick=False):
        scheduler.fire_due_jobs()
    assert list(Run.objects.filter(job_id="once").values_list("status", flat=True)) == ["skipped"]
    assert Job.objects.get(pk="once").status == Job.Status.COMPLETED


@pytest.mark.django_db
def test_deleting_calendars_from_the_admin_list_keeps_those_jobs_use(admin_client):
    used = calendar_services.calendar_create(data={"name": "used", "time_zone": "UTC"})
    free = calendar_services.calendar_create(data={"name": "free", "time_zone": "UTC"})
    services.job_create(data={"id": "uses", "cron": "0 * * * *", "url": URL, "calendars": [used.pk]})
    response = admin_client.post(
        "/admin/calendars/calendar/",
        {"action": "delete_selected", "_selected_action": [used.pk, free.pk], "post": "yes"},
        follow=True,
    )
    assert list(Calendar.objects.values_list("name", flat=True)) == ["used"]
    assert "Used by the jobs uses" in response.content.decode()
    assert Job.objects.get(pk="uses").calendars == [used.pk]


def test_catching_up_across_a_fall_back_keeps_the_repeated_times_second_fire():
    schedule = Schedule("cron", "0 2 * * *", None, None, "Europe/Berlin", 0, "shift_twice")
    previous, now = datetime(2026, 10, 25, 0, 0, tzinfo=UTC), datetime(2026, 10, 27, 1, 0, tzinfo=UTC)
    missed = schedule.missed(previous, now, limit=100)
    walked: list[datetime] = []
    at: datetime | None = previous
    while at is not None and (at := schedule.next_fire(at, at)) is not None and at <= now:
        walked.append(at)
    assert missed == walked
    assert datetime(2026, 10, 25, 1, 0, tzinfo=UTC) in missed  # 02:00 the second time (CET)
