"""Workflows with real worker and beat processes: A (every 5 s) → B on success → C on finish of B,
and D on A's failure. Each upstream run fires each matching downstream job exactly once, even
when the upstream's message is delivered again and its outcome is recorded again."""

from __future__ import annotations

import time
from collections import Counter

import pytest

from tests.e2e.conftest import System
from tests.e2e.test_system import create, wait_for

pytestmark = pytest.mark.e2e

GOING = ("queued", "running")
PHASE_SECONDS = 16  # the longest each phase may take: A succeeding twice, then failing twice

# Run in the system's own environment (manage.py shell): A's last finished run delivered again,
# both as its fire and as its run, then its downstream jobs fired again as a second recording of
# its outcome would. None of it may make a second downstream run.
INJECT = """
from jobs.models import Job
from django.db import transaction
from runs.dependencies import fire_downstream
from runs.models import Run
from runs.tasks import execute_job

run = Run.objects.filter(job_id="wf-a", status__in=["success", "failed"]).order_by("-pk").first()
execute_job.apply_async(kwargs={"job_id": "wf-a", "scheduled_for": run.scheduled_for.isoformat()})
execute_job.apply_async(kwargs={"job_id": "wf-a", "run_id": run.pk})
with transaction.atomic():
    again = fire_downstream(run, Job.objects.get(pk="wf-a"))
print(run.pk, run.status, len(again))
"""


def inject(system: System) -> list[str]:
    """INJECT's summary line (the command's logging shares its stdout)."""
    return system.manage("shell", "-c", INJECT).strip().splitlines()[-1].split()


def by_upstream(runs: list[dict]) -> Counter[int]:
    return Counter(r["upstream_run"] for r in runs if r["trigger"] == "dependency")


def test_a_chain_fires_each_downstream_once_per_matching_upstream_run(system: System, target):
    path = f"{target.url}/{system.env['CRONTASK_QUEUE']}"  # the target is shared by the backends' systems
    switch = f"wf-{system.env['CRONTASK_QUEUE']}"
    target.switches[switch] = 200
    create(system, id="wf-a", interval_seconds=5, url=f"{target.url}/switch/{switch}")
    create(system, id="wf-b", url=f"{path}/wf-b", after=[{"job": "wf-a", "on": "success"}])
    create(system, id="wf-c", url=f"{path}/wf-c", after=[{"job": "wf-b", "on": "finish"}])
    create(system, id="wf-d", url=f"{path}/wf-d", after=[{"job": "wf-a", "on": "failure"}])

    def ended(status: str) -> int:
        return sum(r["status"] == status for r in system.runs("wf-a"))

    assert wait_for(lambda: ended("success") >= 2, timeout=PHASE_SECONDS), system.log.read_text()[-3000:]
    pk, status, again = inject(system)
    assert (status, again) == ("success", "0")
    target.switches[switch] = 500
    assert wait_for(lambda: ended("failed") >= 2, timeout=PHASE_SECONDS), system.log.read_text()[-3000:]
    pk_failed, status, again = inject(system)
    assert (status, again) == ("failed", "0")
    assert system.api("POST", "/api/jobs/wf-a/pause/").status_code == 200

    def settled() -> bool:
        everything = [r for job in ("wf-a", "wf-b", "wf-c", "wf-d") for r in system.runs(job)]
        return bool(everything) and not any(r["status"] in GOING for r in everything)

    assert wait_for(settled, timeout=20), system.log.read_text()[-3000:]
    # The injected messages (two per injection) reached the worker, and its claims dropped them.
    duplicates = "duplicate delivery of job wf-a fire"
    assert wait_for(lambda: system.log.read_text().count(duplicates) >= 4, timeout=10), system.log.read_text()[-3000:]
    time.sleep(2)  # anything a late duplicate would make, made by now
    a_runs = system.runs("wf-a")
    b_runs, c_runs, d_runs = system.runs("wf-b"), system.runs("wf-c"), system.runs("wf-d")
    succeeded = {r["id"] for r in a_runs if r["status"] == "success"}
    failed = {r["id"] for r in a_runs if r["status"] == "failed"}
    assert (len(succeeded) >= 2, len(failed) >= 2) == (True, True), [(r["id"], r["status"]) for r in a_runs]
    assert {r["status"] for r in a_runs} == {"success", "failed"}  # no skipped fire: every fire ran once
    assert int(pk) in succeeded
    assert int(pk_failed) in failed
    # Exactly one B per successful A and none for a failed one; one D per failed A; one C per B.
    assert by_upstream(b_runs) == Counter(succeeded)
    assert by_upstream(d_runs) == Counter(failed)
    assert by_upstream(c_runs) == Counter(r["id"] for r in b_runs)
    assert all(r["trigger"] == "dependency" and r["status"] == "success" for r in b_runs + c_runs + d_runs)
    hits = {job: target.hits[f"/{system.env['CRONTASK_QUEUE']}/{job}"] for job in ("wf-b", "wf-c", "wf-d")}
    assert hits == {"wf-b": len(succeeded), "wf-c": len(b_runs), "wf-d": len(failed)}
    # The graph of the chain, from its middle.
    graph = system.api("GET", "/api/jobs/wf-b/graph/").json()
    assert graph["edges"] == [
        {"from": "wf-a", "to": "wf-b", "on": "success"},
        {"from": "wf-a", "to": "wf-d", "on": "failure"},
        {"from": "wf-b", "to": "wf-c", "on": "finish"},
    ]
