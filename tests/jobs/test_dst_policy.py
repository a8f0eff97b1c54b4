"""A job's DST policy on the days a daylight-saving change skips or repeats its time of day, in
America/New_York and Europe/Berlin: the maths (``cron_fires``) and the fires beat makes."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine

from jobs import services
from jobs.triggers import Schedule, cron_fires
from scheduling import fires

NY = ZoneInfo("America/New_York")
BERLIN = ZoneInfo("Europe/Berlin")


def local_fires(expr: str, zone: ZoneInfo, after: datetime, policy: str, count: int = 3) -> list[str]:
    it = cron_fires(expr, zone, after, policy)
    return [next(it).astimezone(zone).isoformat() for _ in range(count)]


def test_new_york_spring_forward_shift_and_skip():
    after = datetime(2026, 3, 7, 12, tzinfo=NY)
    for policy in ("shift_once", "shift_twice"):
        assert local_fires("30 2 * * *", NY, after, policy) == [
            "2026-03-08T03:00:00-04:00",  # 02:30 does not exist that day: at the next valid time
            "2026-03-09T02:30:00-04:00",
            "2026-03-10T02:30:00-04:00",
        ]
    for policy in ("skip_once", "skip_twice"):
        assert local_fires("30 2 * * *", NY, after, policy) == [
            "2026-03-09T02:30:00-04:00",  # not at all on the 8th
            "2026-03-10T02:30:00-04:00",
            "2026-03-11T02:30:00-04:00",
        ]


def test_berlin_spring_forward_shift_and_skip():
    after = datetime(2026, 3, 28, 12, tzinfo=BERLIN)
    assert local_fires("30 2 * * *", BERLIN, after, "shift_once") == [
        "2026-03-29T03:00:00+02:00",
        "2026-03-30T02:30:00+02:00",
        "2026-03-31T02:30:00+02:00",
    ]
    assert local_fires("30 2 * * *", BERLIN, after, "skip_once") == [
        "2026-03-30T02:30:00+02:00",
        "2026-03-31T02:30:00+02:00",
        "2026-04-01T02:30:00+02:00",
    ]


def test_new_york_fall_back_once_and_twice():
    # 2026-11-01: 02:00 EDT becomes 01:00 EST, so 01:30 happens twice.
    after = datetime(2026, 10, 31, 12, tzinfo=NY)
    for policy in ("shift_once", "skip_once"):
        assert local_fires("30 1 * * *", NY, after, policy) == [
            "2026-11-01T01:30:00-04:00",
            "2026-11-02T01:30:00-05:00",
            "2026-11-03T01:30:00-05:00",
        ]
    for policy in ("shift_twice", "skip_twice"):
        assert local_fires("30 1 * * *", NY, after, policy) == [
            "2026-11-01T01:30:00-04:00",
            "2026-11-01T01:30:00-05:00",  # the repeated hour: again, an hour later
            "2026-11-02T01:30:00-05:00",
        ]


def test_berlin_fall_back_once_and_twice():
    # 2026-10-25: 03:00 CEST becomes 02:00 CET, so 02:30 happens twice.
    after = datetime(2026, 10, 24, 12, tzinfo=BERLIN)
    assert local_fires("30 2 * * *", BERLIN, after, "shift_once") == [
        "2026-10-25T02:30:00+02:00",
        "2026-10-26T02:30:00+01:00",
        "2026-10-27T02:30:00+01:00",
    ]
    assert local_fires("30 2 * * *", BERLIN, after, "skip_twice") == [
        "2026-10-25T02:30:00+02:00",
        "2026-10-25T02:30:00+01:00",
        "2026-10-26T02:30:00+01:00",
    ]


def test_twice_interleaves_the_repeated_times_in_order():
    after = datetime(2026, 10, 31, 12, tzinfo=NY)
    assert local_fires("0,30 1 * * *", NY, after, "shift_twice", count=5) == [
        "2026-11-01T01:00:00-04:00",
        "2026-11-01T01:30:00-04:00",
        "2026-11-01T01:00:00-05:00",
        "2026-11-01T01:30:00-05:00",
        "2026-11-02T01:00:00-05:00",
    ]


def test_the_second_occurrence_is_found_from_between_the_two():
    """Beat asks for the fire after the first 01:30, a moment later: the second one."""
    first = datetime(2026, 11, 1, 1, 30, tzinfo=NY)
    s = Schedule(trigger="cron", cron="30 1 * * *", timezone="America/New_York", dst_policy="shift_twice")
    following = s.next_fire(first, first + timedelta(milliseconds=5))
    assert following is not None
    assert following.astimezone(NY).isoformat() == "2026-11-01T01:30:00-05:00"


@pytest.mark.parametrize("policy", ["shift_once", "skip_once", "shift_twice", "skip_twice"])
def test_wildcard_hour_crons_keep_standard_cron_behaviour(policy):
    """Every half hour: 02:xx does not exist on the spring day; 01:xx fires at each occurrence on the fall day."""
    spring = local_fires("*/30 * * * *", NY, datetime(2026, 3, 8, 1, 15, tzinfo=NY), policy, count=3)
    assert spring == ["2026-03-08T01:30:00-05:00", "2026-03-08T03:00:00-04:00", "2026-03-08T03:30:00-04:00"]
    fall = local_fires("30 * * * *", NY, datetime(2026, 11, 1, 0, 45, tzinfo=NY), policy, count=3)
    assert fall == ["2026-11-01T01:30:00-04:00", "2026-11-01T01:30:00-05:00", "2026-11-01T02:30:00-05:00"]


def test_missed_lists_the_fires_of_the_policy():
    s = Schedule(trigger="cron", cron="30 1 * * *", timezone="America/New_York", dst_policy="shift_twice")
    previous = datetime(2026, 10, 31, 1, 30, tzinfo=NY)
    now = datetime(2026, 11, 2, 12, tzinfo=NY)
    assert [f.astimezone(NY).isoformat() for f in s.missed(previous, now, limit=10)] == [
        "2026-11-01T01:30:00-04:00",
        "2026-11-01T01:30:00-05:00",
        "2026-11-02T01:30:00-05:00",
    ]
    skip = Schedule(trigger="cron", cron="30 2 * * *", timezone="America/New_York", dst_policy="skip_once")
    spring = skip.missed(datetime(2026, 3, 7, 2, 30, tzinfo=NY), datetime(2026, 3, 9, 12, tzinfo=NY), limit=10)
    assert [f.astimezone(NY).isoformat() for f in spring] == ["2026-03-09T02:30:00-04:00"]


def simulate(make_beat, zone: ZoneInfo, cron: str, policy: str, start: datetime, days: int) -> list[str]:
    """What beat fires, waking at each next_run_at as it does."""
    with time_machine.travel(start, tick=False):
        services.job_create(
            data={
                "id": "night",
                "cron": cron,
                "timezone": str(zone),
                "dst_policy": policy,
                "url": "http://127.0.0.1:9/",
            }
        )
    scheduler = make_beat()
    fired: list[str] = []
    scheduler.publish = lambda fires: fired.extend(f.scheduled_for.astimezone(zone).isoformat() for f in fires)
    end = start + timedelta(days=days)
    for _ in range(days * 4):
        due = fires.next_due_at()
        if due is None or due >= end:
            break
        with time_machine.travel(due + timedelta(milliseconds=3), tick=False):
            scheduler.fire_due_jobs()
    return fired


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("zone", "cron", "start", "policy", "expected"),
    [
        (NY, "30 2 * * *", datetime(2026, 3, 7, 12, tzinfo=NY), "skip_once",
         ["2026-03-09T02:30:00-04:00", "2026-03-10T02:30:00-04:00"]),
        (NY, "30 1 * * *", datetime(2026, 10, 31, 12, tzinfo=NY), "shift_twice",
         ["2026-11-01T01:30:00-04:00", "2026-11-01T01:30:00-05:00", "2026-11-02T01:30:00-05:00"]),
        (BERLIN, "30 2 * * *", datetime(2026, 3, 28, 12, tzinfo=BERLIN), "skip_twice",
         ["2026-03-30T02:30:00+02:00", "2026-03-31T02:30:00+02:00"]),
        (BERLIN, "30 2 * * *", datetime(2026, 10, 24, 12, tzinfo=BERLIN), "skip_twice",
         ["2026-10-25T02:30:00+02:00", "2026-10-25T02:30:00+01:00", "2026-10-26T02:30:00+01:00"]),
    ],
)  # fmt: skip
def test_beat_fires_by_the_policy(make_beat, zone, cron, start, policy, expected):
    assert simulate(make_beat, zone, cron, policy, start, days=3)[: len(expected)] == expected
