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
