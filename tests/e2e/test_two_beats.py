"""Two beat processes at once: one fires (the advisory-lock leader), every fire makes exactly one
run, and when the leader is killed with SIGKILL the other takes over within 10 s."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

from tests.e2e.conftest import _drop_database, _postgres_database

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        not os.environ.get("DATABASE_URL", "").startswith("postgres"),
        reason="the leader lock is PostgreSQL's (set DATABASE_URL, CELERY_BROKER_URL)",
    ),
]


@pytest.fixture
def cluster(tmp_path, migrated_template):
    db_url, admin_dsn = _postgres_database(os.environ["DATABASE_URL"], template=migrated_template)
    env = {
        **os.environ,
        "DATABASE_URL": db_url,
        "CELERY_BROKER_URL": os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/0"),
        "CRONTASK_QUEUE": f"beats-{uuid.uuid4().hex[:8]}",
        "CRONTASK_VAR_DIR": str(tmp_path / "var"),
        "PYTHONUNBUFFERED": "1",
    }
    procs: dict[str, subprocess.Popen] = {}

    def start(name: str, *args: str) -> subprocess.Popen:
        log = (tmp_path / f"{name}.log").open("wb")
        procs[name] = subprocess.Popen([sys.executable, "-m", "celery", "-A", "crontask", *args], cwd=ROOT, env=env,
                                       stdout=log, stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
        return procs[name]

    dsn = urlunsplit(urlsplit(db_url)._replace(scheme="postgresql"))
    try:
        yield {"env": env, "start": start, "procs": procs, "dsn": dsn, "logs": tmp_path}
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        _drop_database(admin_dsn, urlsplit(db_url).path.lstrip("/"))


def fires(dsn: str) -> list:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute("SELECT scheduled_for FROM runs_run WHERE job_id = 'tick' ORDER BY scheduled_for")
        return [row[0] for row in rows]


def test_two_beats_fire_each_fire_once_and_a_standby_takes_over(cluster, http_target):
    subprocess.run(
        [sys.executable, "manage.py", "shell", "-c",
         "from jobs import services; services.job_create(data={'id': 'tick', 'interval_seconds': 1, "
         f"'url': '{http_target.url}/tick'}})"],
        cwd=ROOT, env=cluster["env"], check=True, timeout=60,
    )  # fmt: skip
    cluster["start"]("worker", "worker", "-l", "INFO", "--concurrency", "4")
    first = cluster["start"]("beat-a", "beat", "-l", "INFO")
    time.sleep(3)
    cluster["start"]("beat-b", "beat", "-l", "INFO")
    time.sleep(8)

    before = fires(cluster["dsn"])
    assert len(before) >= 8, before
    assert len(set(before)) == len(before)
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(before)]
    # every second fired once: none missed, none doubled (the first gap may span beat's start:
    # fires due before any beat ran are coalesced into one)
    assert set(gaps[1:]) == {1.0}, gaps
    logs = cluster["logs"]
    assert "is now the leader" in (logs / "beat-a.log").read_text()
    assert "is now the leader" not in (logs / "beat-b.log").read_text()

    os.killpg(first.pid, signal.SIGKILL)
    killed_at = before[-1]
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and not [
        f for f in fires(cluster["dsn"]) if f > killed_at + timedelta(seconds=2)
    ]:
        time.sleep(0.5)
    after = [f for f in fires(cluster["dsn"]) if f > killed_at]
    assert after, (logs / "beat-b.log").read_text()[-2000:]
    assert "is now the leader" in (logs / "beat-b.log").read_text()
    takeover = (after[0] - killed_at).total_seconds()
    assert takeover < 10, takeover
    all_fires = fires(cluster["dsn"])
    assert len(set(all_fires)) == len(all_fires)
