"""GET /metrics, for real: web, beat and two worker processes (with a pool process each) on a
database of their own, jobs calling a local HTTP target every second. The counts each process
wrote add up, in web's /metrics, to exactly the runs the database holds."""

from __future__ import annotations

import os
import time
from collections import Counter

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.faults import Cluster, cluster, wait_for
from tests.http_target import HttpTarget

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        not os.environ.get("DATABASE_URL", "").startswith("postgres"),
        reason="runs on a PostgreSQL database of its own (set DATABASE_URL, CELERY_BROKER_URL)",
    ),
    pytest.mark.timeout(120),
]

TOKEN = "metrics-e2e-token"
RUNNING_FOR = 8.0
FINISHED = ("success", "failed", "timeout", "skipped", "cancelled", "lost")


def scrape(made: Cluster) -> dict[str, list[tuple[dict[str, str], float]]]:
    response = requests.get(f"{made.base_url}/metrics", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
    assert response.status_code == 200, response.text
    found: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            found.setdefault(sample.name, []).append((sample.labels, sample.value))
    return found


def counted_by_status(found: dict) -> Counter:
    """Runs counted as they ended (by workers, the reaper, claims), and the fires beat recorded as
    skipped runs itself (fires that fell due before it started: missed)."""
    totals: Counter = Counter()
    for labels, value in found.get("crontask_runs_total", []):
        totals[labels["status"]] += int(value)
    for _labels, value in found.get("crontask_fires_skipped_by_beat_total", []):
        totals["skipped"] += int(value)
    return +totals


def finished_by_status(made: Cluster) -> Counter:
    rows = made.query("SELECT status, count(*) FROM runs_run WHERE status = ANY(%s) GROUP BY status", (list(FINISHED),))
    return Counter(dict(rows))


def test_the_runs_counted_by_two_workers_add_up_to_the_runs_in_the_database(tmp_path, migrated_template):
    broker = os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/0")
    with HttpTarget() as target:
        jobs = {
            "ok-1": {"interval_seconds": 1, "url": f"{target.url}/ok"},
            "ok-2": {"interval_seconds": 1, "url": f"{target.url}/slow/0.3"},
            "bad": {"interval_seconds": 1, "url": f"{target.url}/status/500"},
        }
        # Each fire a message of its own (not HTTP fires due together in one): both workers take some.
        env = {"CRONTASK_METRICS_TOKEN": TOKEN, "CRONTASK_FIRE_BATCH_SIZE": "1"}
        with cluster(tmp_path, broker, template=migrated_template, jobs=jobs, env=env) as made:
            made.start_one("web")
            made.start_one("worker", worker_concurrency=1)
            made.start_one("worker-2", worker_concurrency=1)
            workers_up = "SELECT count(*) FROM crontask_heartbeat WHERE name LIKE 'worker:%%'"
            assert wait_for(lambda: made.query(workers_up) == [(2,)], 60), made.log("worker-2")
            made.start_one("beat")  # once both workers take messages: the fires go to both
            time.sleep(RUNNING_FOR)
            for job_id in jobs:  # no more fires; beat stays up to send what it recorded
                response = requests.post(f"{made.base_url}/api/jobs/{job_id}/pause/", headers=made.auth, timeout=10)
                assert response.status_code == 200, response.text
            unfinished = "SELECT count(*) FROM runs_run WHERE status IN ('queued', 'running')"
            assert wait_for(lambda: made.query(unfinished) == [(0,)], 30), made.query(unfinished)
            # A run is counted just after its commit: the scrape catches up at once.
            assert wait_for(lambda: counted_by_status(scrape(made)) == finished_by_status(made), 10), (
                counted_by_status(scrape(made)),
                finished_by_status(made),
            )
            found = scrape(made)
            in_database = finished_by_status(made)
            by_worker = dict(made.query("SELECT worker, count(*) FROM runs_run WHERE worker <> '' GROUP BY worker"))
            scheduled = made.query(
                "SELECT count(*), count(*) FILTER (WHERE status <> 'skipped') FROM runs_run "
                "WHERE trigger = 'scheduled' AND attempt = 1"
            )[0]
            made_skipped = [error for (error,) in made.query("SELECT error FROM runs_run WHERE status = 'skipped'")]
            files = sorted(path.name for path in (tmp_path / "var" / "metrics").glob("counter_*.db"))

    # Both workers ran runs, and every run is counted once, in its status: exactly.
    assert len(by_worker) == 2, by_worker
    assert all(count > 0 for count in by_worker.values()), by_worker
    assert in_database["success"] >= 10, in_database
    assert in_database["failed"] >= 5, in_database
    assert counted_by_status(found) == in_database
    by_kind = {(labels["kind"], labels["trigger"]) for labels, _ in found["crontask_runs_total"]}
    assert by_kind == {("http", "scheduled")}
    assert all(error.startswith(("Missed", "The job was paused")) for error in made_skipped), made_skipped
    # Beat published each fire it claimed once (no outage: nothing was sent again; the fires that
    # fell due before it started it recorded as skipped), and each run that started has its
    # lateness and its duration.
    [(_, published)] = found["crontask_fires_published_total"]
    skipped_by_beat = sum(value for _, value in found.get("crontask_fires_skipped_by_beat_total", []))
    assert published == scheduled[0] - skipped_by_beat
    [lateness] = [
        value for labels, value in found["crontask_run_start_lateness_seconds_count"] if labels["kind"] == "http"
    ]
    assert lateness == scheduled[1]
    [durations] = [value for labels, value in found["crontask_run_duration_seconds_count"] if labels["kind"] == "http"]
    assert durations == in_database["success"] + in_database["failed"]
    assert found["crontask_beat_claim_lag_seconds_count"] == [({}, published)]  # each fire claimed once
    # Files of the pool processes of both workers and beat's, at least.
    assert len(files) >= 3, files
    # The state read at the scrape.
    assert dict((labels["status"], value) for labels, value in found["crontask_jobs"])["paused"] == 3
    assert found["crontask_runs_running"] == [({}, 0.0)]
    workers = {labels["worker"] for labels, _ in found["crontask_worker_heartbeat_age_seconds"]}
    assert workers == {name.split(" pid=")[0] for name in by_worker}, workers  # the run names its pool process
    [(_, beat_age)] = found["crontask_beat_heartbeat_age_seconds"]
    assert 0 <= beat_age < 30
