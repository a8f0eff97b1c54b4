"""Daily jobs across daylight-saving changes, with simulated time through the scheduler itself.

The simulation does what beat does: sleep until the earliest ``next_run_at``, wake, fire what is
due. Each fire is recorded in the job's local time.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine

from jobs import services
from scheduling import fires

pytestmark = pytest.mark.django_db


def simulate(make_beat, zone: str, start: datetime, days: int) -> dict[str, list[str]]:
    tz = ZoneInfo(zone)
    with time_machine.travel(start, tick=False):
        for job_id, cron in (("night", "30 2 * * *"), ("afternoon", "4 16 * * *")):
            services.job_create(data={"id": job_id, "cron": cron, "timezone": zone, "url": "http://127.0.0.1:9/"})
    scheduler = make_beat()
    fired: dict[str, list[str]] = {"night": [], "afternoon": []}

    def publish(fires: list) -> None:
        for fire in fires:
            fired[fire.job_id].append(fire.scheduled_for.astimezone(tz).isoformat())

    scheduler.publish = publish
    end = start + timedelta(days=days)
    for _ in range(days * 4):  # a bound, so a scheduler that stops firing fails instead of hanging
        due = fires.next_due_at()
        if due is None or due >= end:
            break
        with time_machine.travel(due + timedelta(milliseconds=3), tick=False):
            scheduler.fire_due_jobs()
    return fired


def test_berlin_spring_forward(make_beat):
    fired = simulate(make_beat, "Europe/Berlin", datetime(2025, 3, 28, 12, tzinfo=ZoneInfo("Europe/Berlin")), days=4)
    assert fired["night"] == [
        "2025-03-29T02:30:00+01:00",
        "2025-03-30T03:00:00+02:00",  # 02:30 does not exist that day: once, at the next valid time
        "2025-03-31T02:30:00+02:00",
        "2025-04-01T02:30:00+02:00",
    ]
    assert fired["afternoon"] == [
        "2025-03-28T16:04:00+01:00",
        "2025-03-29T16:04:00+01:00",
        "2025-03-30T16:04:00+02:00",
        "2025-03-31T16:04:00+02:00",
    ]


def test_berlin_fall_back(make_beat):
    fired = simulate(make_beat, "Europe/Berlin", datetime(2025, 10, 24, 12, tzinfo=ZoneInfo("Europe/Berlin")), days=4)
    assert fired["night"] == [
        "2025-10-25T02:30:00+02:00",
        "2025-10-26T02:30:00+02:00",  # 02:30 happens twice that day: once
        "2025-10-27T02:30:00+01:00",
        "2025-10-28T02:30:00+01:00",
    ]
    assert [f[11:16] for f in fired["afternoon"]] == ["16:04"] * 4


def test_new_york_spring_forward(make_beat):
    fired = simulate(
        make_beat, "America/New_York", datetime(2025, 3, 7, 12, tzinfo=ZoneInfo("America/New_York")), days=4
    )
    assert fired["night"] == [
        "2025-03-08T02:30:00-05:00",
        "2025-03-09T03:00:00-04:00",
        "2025-03-10T02:30:00-04:00",
        "2025-03-11T02:30:00-04:00",
    ]
    assert fired["afternoon"] == [
        "2025-03-07T16:04:00-05:00",
        "2025-03-08T16:04:00-05:00",
        "2025-03-09T16:04:00-04:00",
        "2025-03-10T16:04:00-04:00",
    ]
