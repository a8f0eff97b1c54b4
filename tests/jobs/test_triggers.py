from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.core.exceptions import ValidationError

from jobs.triggers import Schedule, cron_fires_after, validate_cron


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0, micro: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, micro, tzinfo=UTC)


def test_it_fires_a_five_field_cron_at_the_minute_boundary():
    s = Schedule(trigger="cron", cron="* * * * *", timezone="UTC")
    assert s.first_fire(utc(2026, 1, 1, 12, 0, 17)) == utc(2026, 1, 1, 12, 1, 0)


def test_it_fires_a_six_field_cron_at_its_seconds():
    s = Schedule(trigger="cron", cron="*/10 * * * * *", timezone="UTC")
    assert s.first_fire(utc(2026, 1, 1, 12, 0, 17, 500)) == utc(2026, 1, 1, 12, 0, 20)


def test_it_reads_the_cron_in_the_jobs_time_zone():
    s = Schedule(trigger="cron", cron="0 9 * * *", timezone="Asia/Shanghai")
    assert s.first_fire(utc(2026, 1, 1, 0, 0)) == utc(2026, 1, 1, 1, 0)


def test_it_fires_a_nonexistent_local_time_once_on_the_spring_forward_day():
    zone = ZoneInfo("Europe/Berlin")
    after = datetime(2025, 3, 29, 12, tzinfo=zone)
    fires = []
    for _ in range(3):
        fire = cron_fires_after("30 2 * * *", zone, after)
        assert fire is not None
        fires.append(fire.astimezone(zone))
        after = fire
    assert [f.isoformat() for f in fires] == [
        "2025-03-30T03:00:00+02:00",
        "2025-03-31T02:30:00+02:00",
        "2025-04-01T02:30:00+02:00",
    ]


def test_it_fires_a_repeated_local_time_once_on_the_fall_back_day():
    zone = ZoneInfo("Europe/Berlin")
    first = cron_fires_after("30 2 * * *", zone, datetime(2025, 10, 25, 12, tzinfo=zone))
    assert first is not None
    second = cron_fires_after("30 2 * * *", zone, first)
    assert first == utc(2025, 10, 26, 0, 30)
    assert second == utc(2025, 10, 27, 1, 30)


def test_it_anchors_intervals_on_the_previous_fire():
    s = Schedule(trigger="interval", interval_seconds=10)
    assert s.next_fire(utc(2026, 1, 1, 0, 0, 0), now=utc(2026, 1, 1, 0, 0, 0, 300000)) == utc(2026, 1, 1, 0, 0, 10)


def test_it_skips_interval_fires_missed_while_beat_was_down():
    s = Schedule(trigger="interval", interval_seconds=10)
    assert s.next_fire(utc(2026, 1, 1, 0, 0, 0), now=utc(2026, 1, 1, 0, 5, 3)) == utc(2026, 1, 1, 0, 5, 10)


def test_it_gives_no_next_fire_for_date_and_manual():
    at = utc(2026, 12, 31, 23, 59, 59)
    assert Schedule(trigger="date", run_at=at).first_fire(utc(2026, 1, 1)) == at
    assert Schedule(trigger="date", run_at=at).next_fire(at, now=at + timedelta(seconds=1)) is None
    assert Schedule(trigger="manual").first_fire(utc(2026, 1, 1)) is None


@pytest.mark.parametrize(
    ("expr", "reason"),
    [
        ("61 * * * *", "minute"),
        ("* * * *", "5 fields"),
        ("* * * * * * *", "5 fields"),
        ("*/0 * * * *", "minute"),
        ("60 * * * * *", "second"),
        ("0 0 31 2 *", "day-of-month"),
    ],
)
def test_it_refuses_bad_cron_with_the_reason(expr, reason):
    with pytest.raises(ValidationError) as exc:
        validate_cron(expr)
    assert reason in exc.value.messages[0]


@pytest.mark.parametrize(
    ("expr", "after", "fires"),
    [
        # L in day-of-month: the last day of each month, whatever its length
        ("0 9 L * *", utc(2026, 1, 1, 12), [utc(2026, 1, 31, 9), utc(2026, 2, 28, 9), utc(2026, 3, 31, 9)]),
        # 5L in day-of-week: the last Friday of each month
        ("0 9 * * 5L", utc(2026, 1, 1, 12), [utc(2026, 1, 30, 9), utc(2026, 2, 27, 9), utc(2026, 3, 27, 9)]),
        # mon#2: the second Monday of each month
        ("0 9 * * mon#2", utc(2026, 1, 1, 12), [utc(2026, 1, 12, 9), utc(2026, 2, 9, 9), utc(2026, 3, 9, 9)]),
        # weekdays of January to March only: from the end of March, the next is New Year 2027 (a Friday)
        ("0 9 * jan-mar 1-5", utc(2026, 3, 31, 12), [utc(2027, 1, 1, 9), utc(2027, 1, 4, 9), utc(2027, 1, 5, 9)]),
        # lists and stepped ranges: on the hour and half past, every other hour from 9 to 17
        ("0,30 9-17/2 * * *", utc(2026, 1, 1, 12), [utc(2026, 1, 1, 13), utc(2026, 1, 1, 13, 30), utc(2026, 1, 1, 15)]),
        (
            "0,30 9-17/2 * * *",
            utc(2026, 1, 1, 17, 30),
            [utc(2026, 1, 2, 9), utc(2026, 1, 2, 9, 30), utc(2026, 1, 2, 11)],
        ),
    ],
)
def test_it_computes_the_next_fires_of_crons_extended_syntax(expr, after, fires):
    validate_cron(expr)
    schedule = Schedule(trigger="cron", cron=expr, timezone="UTC")
    got = [schedule.first_fire(after)]
    while len(got) < len(fires):
        last = got[-1]
        assert last is not None
        got.append(schedule.next_fire(last, now=last))
    assert got == fires
