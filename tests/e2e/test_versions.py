"""Reverting a cron change, for real (issue 21): web, worker and beat on a database of their own.

A job fires on even seconds (``*/2``), is changed to fire on odd ones (``1-59/2``) and runs so,
then is reverted to its first version through the API: the runs after the revert are due on even
seconds again, as beat took the recomputed next fire.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta

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

EVEN, ODD = "*/2 * * * * *", "1-59/2 * * * * *"


def call(made: Cluster, method: str, path: str, body: dict | None = None) -> dict:
    response = requests.request(method, made.base_url + path, json=body, headers=made.auth, timeout=10)
    assert response.status_code < 300, (method, path, response.status_code, response.text)
    return response.json() if response.content else {}


def fires_since(made: Cluster, since: datetime) -> list[datetime]:
    rows = made.query(
        "SELECT scheduled_for FROM runs_run WHERE job_id = 'tick' AND scheduled_for > %s ORDER BY scheduled_for",
        (since,),
    )
    return [row[0] for row in rows]


def test_reverting_a_cron_change_makes_the_next_runs_follow_the_old_cron(tmp_path, migrated_template):
    broker = os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/0")
    with HttpTarget() as target, cluster(tmp_path, broker, template=migrated_template) as made:
        made.start()
        started = datetime.now().astimezone()
        call(made, "post", "/api/jobs/", {"id": "tick", "cron": EVEN, "url": target.url + "/ok"})
        assert wait_for(lambda: len(fires_since(made, started)) >= 2, 30), made.log("beat")
        assert {fire.second % 2 for fire in fires_since(made, started)} == {0}

        # A fire of the old cron beat claimed (ahead of its time) before a change may still run:
        # each check counts from the next fire the change's answer gives, recomputed by the service.
        job = call(made, "patch", "/api/jobs/tick/", {"cron": ODD, "change_reason": "odd seconds"})
        changed = datetime.fromisoformat(job["next_run_at"])
        assert changed.second % 2 == 1
        assert wait_for(lambda: len(fires_since(made, changed)) >= 1, 30), made.log("beat")
        assert {fire.second % 2 for fire in [changed, *fires_since(made, changed)]} == {1}

        job = call(made, "post", "/api/jobs/tick/versions/1/revert/", {"change_reason": "back to even"})
        assert job["cron"] == EVEN
        reverted = datetime.fromisoformat(job["next_run_at"])
        assert reverted.second % 2 == 0  # recomputed by the service
        assert wait_for(lambda: len([f for f in fires_since(made, reverted) if f >= reverted]) >= 2, 30)
        fires = [fire for fire in fires_since(made, reverted - timedelta(microseconds=1))]
        assert fires[0] == reverted  # beat fired the revert's next fire
        assert {fire.second % 2 for fire in fires} == {0}, fires

        versions = call(made, "get", "/api/jobs/tick/versions/")["results"]
        assert [(v["number"], v["action"], v["source"]) for v in versions] == [
            (3, "revert", "api"), (2, "update", "api"), (1, "create", "api"),
        ]  # fmt: skip
        assert versions[0]["reason"] == "Reverted to version 1: back to even"
