"""Alerts, for real: web, worker and beat processes, jobs calling a local HTTP target, rules and
channels made over the API, notifications received by a local webhook receiver that checks
their signature.

One scenario (about a minute), asserted by the tests below:
- ``flaky`` fails every 2 s for 20 s, then is fixed: exactly one ``failed`` alert, one
  ``consecutive_failures`` (threshold 3) on its third failed fire, then one ``recovered``; a
  second channel that is down all along gets its notifications retried and recorded as failed,
  and the job fired every 2 s all the same;
- ``steady`` takes 0.5 s a run, then one run takes five times that: exactly one ``slow`` alert
  (no threshold: 3 times the p95 of its successful runs; 0.5 s, not less, so that a loaded
  machine's overhead on each run does not lift the p95 past a fifth of the slow run);
- ``quiet`` succeeds every 2 s until beat is killed: exactly one ``no_success`` (threshold 6 s),
  sent by the worker's sweep.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from collections.abc import Iterator
from datetime import datetime

import pytest
import requests

from tests.alerts.receiver import SECRET, Receiver
from tests.e2e.faults import Cluster, cluster, wait_for
from tests.http_target import HttpTarget

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        not os.environ.get("DATABASE_URL", "").startswith("postgres"),
        reason="runs on a PostgreSQL database of its own (set DATABASE_URL, CELERY_BROKER_URL)",
    ),
    pytest.mark.timeout(240),
]

FAILING_FOR = 20.0
NO_SUCCESS_SECONDS = 6
ENV = {
    "CRONTASK_ALERT_SWEEP_SECONDS": "1",
    "CRONTASK_ALERT_RETRY_BASE_SECONDS": "1",
    "CRONTASK_ALERT_MAX_ATTEMPTS": "3",
    "CRONTASK_BASE_URL": "https://crontask.example.com",
}


class Api:
    def __init__(self, made: Cluster) -> None:
        self.base, self.auth = made.base_url, made.auth

    def __call__(self, method: str, path: str, body: dict | None = None) -> dict:
        response = requests.request(method, self.base + path, json=body, headers=self.auth, timeout=10)
        assert response.status_code < 300, (method, path, response.status_code, response.text)
        return response.json() if response.content else {}


class Scenario:
    """What happened: the alerts received, the runs and notifications the database holds."""

    def __init__(self, made: Cluster, receiver: Receiver, api: Api) -> None:
        self.cluster, self.receiver, self.api = made, receiver, api
        self.beat_killed_at: float | None = None
        self.worker_pid = 0

    def alerts(self, event: str | None = None, job: str | None = None) -> list[dict]:
        found = []
        for path, _headers, _query, body in list(self.receiver.requests):
            if path != "/webhook":
                continue
            data = json.loads(body)
            if (event is None or data["event"] == event) and (job is None or data["job"]["id"] == job):
                found.append(data)
        return found

    def runs(self, job_id: str) -> list[tuple[int, datetime | None, str, int | None]]:
        return self.cluster.query(
            "SELECT id, scheduled_for, status, duration_ms FROM runs_run WHERE job_id = %s ORDER BY id", (job_id,)
        )


@pytest.fixture(scope="module")
def scenario(tmp_path_factory, migrated_template: str) -> Iterator[Scenario]:
    broker = os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/0")
    with (
        HttpTarget() as target,
        Receiver() as receiver,
        cluster(tmp_path_factory.mktemp("alerts"), broker, template=migrated_template, env=ENV) as made,
    ):
        made.start(worker_concurrency=4)
        happened = Scenario(made, receiver, Api(made))
        _play(happened, target, receiver)
        yield happened


def _play(happened: Scenario, target: HttpTarget, receiver: Receiver) -> None:
    api, made = happened.api, happened.cluster
    hook = api("POST", "/api/channels/", {"name": "ops", "kind": "webhook", "target": receiver.url + "/webhook",
                                          "secret": SECRET})  # fmt: skip
    down = api("POST", "/api/channels/", {"name": "down", "kind": "slack", "target": receiver.url + "/flaky/1000"})
    jobs: dict[str, dict[str, object]] = {
        "flaky": {"interval_seconds": 2, "url": target.url + "/status/500"},
        "steady": {"interval_seconds": 1, "url": target.url + "/slow/0.5"},
        "quiet": {"interval_seconds": 2, "url": target.url + "/ok"},
    }
    rules: list[dict[str, object]] = [
        {"event": "failed", "jobs": ["flaky"], "channels": [hook["id"], down["id"]]},
        {"event": "consecutive_failures", "threshold": 3, "jobs": ["flaky"], "channels": [hook["id"]]},
        {"event": "slow", "jobs": ["steady"], "channels": [hook["id"]]},
        {"event": "no_success", "threshold": NO_SUCCESS_SECONDS, "jobs": ["quiet"], "channels": [hook["id"]]},
    ]
    for job_id, fields in jobs.items():
        api("POST", "/api/jobs/", {"id": job_id, "name": job_id.title(), **fields})
    for rule in rules:
        api("POST", "/api/alert-rules/", {"name": rule["event"], **rule})
    started = time.monotonic()

    # steady: ten usual runs, then one five times as long, then usual again.
    assert wait_for(lambda: sum(r[2] == "success" for r in happened.runs("steady")) >= 12, 40), made.log("worker")
    api("PATCH", "/api/jobs/steady/", {"url": target.url + "/slow/2.5"})
    assert wait_for(lambda: any((r[3] or 0) >= 2500 for r in happened.runs("steady")), 15), made.log("worker")
    api("PATCH", "/api/jobs/steady/", {"url": target.url + "/slow/0.5"})

    # flaky: failing for 20 s, then fixed.
    time.sleep(max(0.0, FAILING_FOR - (time.monotonic() - started)))
    api("PATCH", "/api/jobs/flaky/", {"url": target.url + "/ok"})
    assert wait_for(lambda: happened.alerts("recovered", "flaky"), 20), made.log("worker")

    # quiet: beat stops; the worker's sweep notices that nothing succeeds any more.
    happened.worker_pid = made.procs["worker"].pid
    made.kill("beat")
    happened.beat_killed_at = time.monotonic()
    assert wait_for(lambda: happened.alerts("no_success"), NO_SUCCESS_SECONDS + 20), made.log("worker")
    # Let anything that would come twice come: sweeps, retries of the channel that is down (1 + 2 s).
    assert wait_for(lambda: not made.query("SELECT 1 FROM alerts_notification WHERE status = 'pending'"), 30), (
        made.query("SELECT id, channel_id, event, attempts, error FROM alerts_notification WHERE status = 'pending'")
    )
    time.sleep(3)


def test_a_job_failing_every_2_s_for_20_s_sends_one_failed_alert_then_one_recovered(scenario):
    failed_runs = [run for run in scenario.runs("flaky") if run[2] == "failed"]
    assert len(failed_runs) >= FAILING_FOR / 2 - 3  # it failed all along (a fire every 2 s)
    [failed] = scenario.alerts("failed")
    assert failed["job"]["id"] == "flaky"
    assert failed["run"]["id"] == failed_runs[0][0]
    assert failed["run"]["url"] == f"https://crontask.example.com/admin/runs/run/{failed_runs[0][0]}/change/"
    assert "HTTP 500" in failed["text"]
    [recovered] = scenario.alerts("recovered")
    first_success = next(run for run in scenario.runs("flaky") if run[2] == "success")
    assert recovered["run"]["id"] == first_success[0]
    [(occurrences, closed)] = scenario.cluster.query(
        "SELECT occurrences, closed_at IS NOT NULL FROM alerts_incident i JOIN alerts_alertrule r ON r.id = i.rule_id "
        "WHERE r.event = 'failed'"
    )
    assert closed
    assert occurrences == len(failed_runs)


def test_consecutive_failures_with_threshold_3_fires_on_the_third(scenario):
    [alert] = scenario.alerts("consecutive_failures")
    failed_runs = [run for run in scenario.runs("flaky") if run[2] == "failed"]
    assert alert["run"]["id"] == failed_runs[2][0]
    assert "3 fires in a row failed" in alert["text"]


def test_a_run_five_times_its_usual_duration_sends_one_slow_alert(scenario):
    [alert] = scenario.alerts("slow")
    assert alert["job"]["id"] == "steady"
    assert alert["run"]["duration_ms"] >= 1000
    assert "3 times the p95" in alert["text"]


def test_no_success_fires_with_beat_stopped_sent_by_the_worker(scenario):
    [alert] = scenario.alerts("no_success")
    assert alert["job"]["id"] == "quiet"
    assert alert["run"] is None
    [(pid,)] = scenario.cluster.query("SELECT pid FROM crontask_heartbeat WHERE name = 'alerts-sweep'")
    assert pid == scenario.worker_pid  # beat is dead: the worker swept


def test_a_channel_that_is_down_never_hurts_the_runs(scenario):
    notifications = scenario.cluster.query(
        "SELECT n.event, n.status, n.attempts, n.error FROM alerts_notification n "
        "JOIN alerts_channel c ON c.id = n.channel_id WHERE c.name = 'down' ORDER BY n.id"
    )
    # Tried 3 times each (CRONTASK_ALERT_MAX_ATTEMPTS), then recorded as failed with the reason. The
    # recovery goes to every channel the failure was sent to, whether it got there or not.
    assert [(event, status, attempts) for event, status, attempts, _ in notifications] == [
        ("failed", "failed", 3),
        ("recovered", "failed", 3),
    ]
    assert all("500" in error for *_, error in notifications)
    assert scenario.receiver.hits["/flaky/1000"] == 6
    fires = Counter(run[1] for run in scenario.runs("flaky"))
    assert set(fires.values()) == {1}  # one run per fire, none retried for the channel's sake


def test_every_alert_was_signed_and_said_once(scenario):
    counts = Counter((alert["event"], alert["job"]["id"]) for alert in scenario.alerts())
    assert counts == {
        ("failed", "flaky"): 1,
        ("consecutive_failures", "flaky"): 1,
        ("recovered", "flaky"): 1,
        ("slow", "steady"): 1,
        ("no_success", "quiet"): 1,
    }
    # The receiver answers 401 to a bad signature: every one to it was taken.
    statuses = scenario.cluster.query(
        "SELECT n.status, count(*) FROM alerts_notification n JOIN alerts_channel c ON c.id = n.channel_id "
        "WHERE c.name = 'ops' GROUP BY n.status"
    )
    assert statuses == [("sent", 5)]
