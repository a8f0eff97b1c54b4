"""Calendars and pause-until, for real (issue 24): web, worker and beat on a database of their own.

A job fires every second and names a calendar with a blackout window of a few seconds: each fire
in the window is one skipped run naming the calendar, each one outside it one run that ran. A job
paused until a few seconds ahead comes back by itself (beat resumes it, audited as the system).
"""

from __future__ import annotations

import os
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
import requests

from tests.e2e.faults import Cluster, cluster, wait_for
from tests.http_target import HttpTarget

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        not os.environ.get("DATABASE_URL", "").startswith("postgres"),
        reason="runs on a PostgreSQL database of its own (set DATABASE_URL, CELERY_BROKER_URL)",
    ),
    pytest.mark.timeout(180),
]

EVERY_SECOND = "* * * * * *"


def call(made: Cluster, method: str, path: str, body: dict | None = None) -> dict:
    response = requests.request(method, made.base_url + path, json=body, headers=made.auth, timeout=10)
    assert response.status_code < 300, (method, path, response.status_code, response.text)
    return response.json() if response.content else {}


def runs_of(made: Cluster, job_id: str) -> list[tuple[datetime, str, str]]:
    return [
        (row[0], row[1], row[2])
        for row in made.query(
            "SELECT scheduled_for, status, error FROM runs_run WHERE job_id = %s AND attempt = 1 "
            "ORDER BY scheduled_for",
            (job_id,),
        )
    ]


def test_a_blackout_window_skips_exactly_the_fires_inside_it_and_a_pause_until_ends_by_itself(
    tmp_path, migrated_template
):
    broker = os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/0")
    with HttpTarget() as target, cluster(tmp_path, broker, template=migrated_template) as made:
        made.start()
        now = datetime.now(UTC).replace(microsecond=0)
        start, end = now + timedelta(seconds=6), now + timedelta(seconds=10)
        calendar = call(
            made, "post", "/api/calendars/",
            {"name": "short-maintenance", "time_zone": "UTC",
             "windows": [{"name": "deploy", "start": start.isoformat(), "end": end.isoformat()}]},
        )  # fmt: skip
        call(
            made, "post", "/api/jobs/",
            {"id": "tick", "cron": EVERY_SECOND, "url": target.url + "/ok", "calendars": [calendar["id"]]},
        )  # fmt: skip
        # Pause another job until a few seconds ahead: it must come back by itself.
        call(made, "post", "/api/jobs/", {"id": "napper", "cron": EVERY_SECOND, "url": target.url + "/ok"})
        until = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=5)
        paused = call(made, "post", "/api/jobs/napper/pause/", {"until": until.isoformat()})
        paused_at = datetime.now(UTC)
        assert (paused["status"], datetime.fromisoformat(paused["paused_until"])) == ("paused", until)

        def settled() -> bool:
            done = [r for r in runs_of(made, "tick") if r[0] >= end + timedelta(seconds=2) and r[1] == "success"]
            return bool(done)

        assert wait_for(settled, 60), made.log("beat")[-4000:]
        tick = [r for r in runs_of(made, "tick") if start - timedelta(seconds=2) <= r[0] < end + timedelta(seconds=2)]
        per_fire = Counter(r[0] for r in tick)
        assert set(per_fire.values()) == {1}, per_fire  # one run per fire, never two
        inside = [r for r in tick if start <= r[0] < end]
        outside = [r for r in tick if not start <= r[0] < end]
        assert [r[0] for r in inside] == [start + timedelta(seconds=s) for s in range(4)]
        assert {r[1] for r in inside} == {"skipped"}
        assert all("calendar 'short-maintenance' (deploy)" in r[2] for r in inside), inside
        assert len(outside) == 4
        assert "skipped" not in {r[1] for r in outside}, outside

        napper = call(made, "get", "/api/jobs/napper/")
        assert (napper["status"], napper["paused_until"]) == ("active", None)
        resumed = made.query("SELECT source, actor FROM audit_auditentry WHERE job_id = 'napper' AND action = 'resume'")
        assert resumed == [("system", "system")]
        back = [r for r in runs_of(made, "napper") if r[0] >= until]
        assert back, made.log("beat")[-4000:]
        # Nothing ran while it was paused (a fire claimed just before the pause may have run); the
        # latest fire that fell due meanwhile ran as it came back (no misfire grace: it runs late).
        while_paused = [
            r
            for r in runs_of(made, "napper")
            if paused_at + timedelta(seconds=2) <= r[0] < until - timedelta(seconds=1)
        ]
        assert while_paused == []
