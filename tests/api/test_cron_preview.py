from __future__ import annotations

from datetime import UTC, datetime

import pytest
import time_machine

pytestmark = pytest.mark.django_db


@time_machine.travel(datetime(2026, 3, 2, 0, 30, tzinfo=UTC), tick=False)
def test_it_previews_the_next_fire_times_in_the_zone(api):
    response = api.get("/api/cron/preview/", {"expr": "0 9 * * mon-fri", "timezone": "Asia/Shanghai", "count": 3})
    assert response.status_code == 200
    body = response.json()
    assert body["next_fire_times"] == [
        "2026-03-02T09:00:00+08:00",
        "2026-03-03T09:00:00+08:00",
        "2026-03-04T09:00:00+08:00",
    ]
    assert "09:00" in body["description"]


@time_machine.travel(datetime(2026, 3, 2, 0, 0, 1, tzinfo=UTC), tick=False)
def test_it_previews_seconds(api):
    body = api.get("/api/cron/preview/", {"expr": "*/10 * * * * *"}).json()
    assert body["next_fire_times"][:2] == ["2026-03-02T00:00:10+00:00", "2026-03-02T00:00:20+00:00"]
    assert len(body["next_fire_times"]) == 5


@pytest.mark.parametrize(
    ("params", "field", "reason"),
    [
        ({"expr": "61 * * * *"}, "expr", "Bad minute"),
        ({"expr": "* * * *"}, "expr", "5 fields"),
        ({"expr": "0 0 31 2 *"}, "expr", "day-of-month"),
        ({"expr": "* * * * *", "timezone": "Moon/Base"}, "timezone", "Unknown time zone"),
        ({"expr": "* * * * *", "count": 0}, "count", ""),
        ({"expr": "* * * * *", "count": 100000}, "count", ""),
        ({}, "expr", "required"),
    ],
)
def test_bad_input_is_400_with_the_reason(api, params, field, reason):
    response = api.get("/api/cron/preview/", params)
    assert response.status_code == 400
    assert reason in response.json()[field][0]


@pytest.mark.parametrize(
    "after", ["9999-12-31T23:59:59Z", "0001-01-01T00:00:00Z", "1970-06-01T00:00:00Z", "2201-01-01T00:00:00Z"]
)
def test_an_after_out_of_range_is_a_400_naming_it(api, after):
    from jobs import services

    services.job_create(data={"id": "pv", "cron": "0 * * * *", "url": "http://127.0.0.1:9/", "jitter_seconds": 100})
    reason = ["A date-time in the years 1971 to 2200."]
    for path, query in (
        ("/api/cron/preview/", {"expr": "0 * * * *"}),
        ("/api/cron/preview/", {"expr": "*/5 * * * * *", "timezone": "Pacific/Kiritimati"}),
        ("/api/jobs/pv/preview/", {}),
        ("/api/cron/preview/job/", {"expr": "0 * * * *", "id": "pv", "jitter_seconds": 100}),
        ("/api/cron/preview/job/", {"interval_seconds": 3600}),
    ):
        response = api.get(path, {**query, "after": after})
        assert response.status_code == 400, (path, response.content)
        assert response.json() == {"after": reason}, path


def test_an_after_within_range_is_previewed(api):
    body = api.get("/api/cron/preview/", {"expr": "0 0 1 1 *", "count": 1, "after": "2199-06-01T00:00:00Z"}).json()
    assert body["next_fire_times"] == ["2200-01-01T00:00:00+00:00"]
