"""The compose file's web, worker and beat commands, run as they are against the machine's
PostgreSQL and Redis with the documented .env.example: migrate, serve with gunicorn, pass each
service's health check, run a job, stop with SIGTERM.

The health checks are what compose waits on (worker and beat start once web is healthy), so
each must pass with the documented settings (ALLOWED_HOSTS=crontask.example.com, HTTPS behind a
proxy). SIGTERM (what ``docker compose stop`` sends) must let a running job finish, not lose it.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import psutil
import pytest
import requests

from tests.e2e.conftest import _drop_database, _free_port, _postgres_database
from tests.test_deploy import compose_command, env_example, production_env, wait_healthy

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        not os.environ.get("DATABASE_URL", "").startswith("postgres"),
        reason="runs the compose commands against PostgreSQL and Redis (set DATABASE_URL, CELERY_BROKER_URL)",
    ),
]


HOST = env_example()["ALLOWED_HOSTS"].split(",")[0]
# What the HTTPS proxy in front of web sends: the public host, and that the client spoke HTTPS.
PROXY_HEADERS = {"Host": HOST, "X-Forwarded-Proto": "https"}


@pytest.fixture
def deployment(tmp_path):
    db_url, admin_dsn = _postgres_database(os.environ["DATABASE_URL"])
    # .env.example as documented; the database, broker and secret are the test's own.
    env = production_env(tmp_path)
    env.update({
        "DATABASE_URL": db_url,
        "CELERY_BROKER_URL": os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/0"),
        # Test isolation: a queue of its own on the shared Redis, and the scripts:sleepy handler.
        "CRONTASK_QUEUE": f"compose-{uuid.uuid4().hex[:8]}",
        "CRONTASK_SCRIPTS_DIR": str(ROOT / "tests" / "scripts"),
        # Docker sets it in every container; the worker's health check names its node by it.
        "HOSTNAME": socket.gethostname(),
    })  # fmt: skip
    port = _free_port()
    logs = {name: (tmp_path / f"{name}.log").open("wb") for name in ("web", "worker", "beat")}
    procs = {}

    def start(name: str) -> None:
        procs[name] = subprocess.Popen(
            compose_command(name, port), cwd=ROOT, env=env, stdout=logs[name], stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip

    try:
        yield {
            "url": f"http://127.0.0.1:{port}", "port": port, "env": env, "procs": procs, "logs": tmp_path,
            "start": start,
        }  # fmt: skip
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        for log in logs.values():
            log.close()
        _drop_database(admin_dsn, urlsplit(db_url).path.lstrip("/"))


def wait_for(predicate, timeout: float):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = predicate()
        except requests.ConnectionError:
            value = None
        if value:
            return value
        time.sleep(0.3)
    return None


def test_the_compose_commands_run_a_job_and_stop_cleanly(deployment):
    url, env, port = deployment["url"], deployment["env"], deployment["port"]

    def log(name: str) -> str:
        return (deployment["logs"] / f"{name}.log").read_text()[-3000:]

    deployment["start"]("web")
    web = wait_healthy("web", port, env, timeout=90)  # compose: 30 s start period, then 5 tries 15 s apart
    assert web.returncode == 0, web.stderr[-2000:] + log("web")
    # ALLOWED_HOSTS still holds for everyone else.
    assert requests.get(f"{url}/health", timeout=5).status_code == 400
    deployment["start"]("worker")  # as compose does: once web (which migrates) is healthy
    deployment["start"]("beat")

    def make_token() -> str:
        manage = [sys.executable, "manage.py"]
        subprocess.run(
            [*manage, "createsuperuser", "--noinput", "--username", "ops", "--email", "ops@example.com"],
            cwd=ROOT,
            env={**env, "DJANGO_SUPERUSER_PASSWORD": "ops-Passw0rd"},
            check=True,
            timeout=60,
        )
        return subprocess.run(
            [*manage, "drf_create_token", "ops"], cwd=ROOT, env=env, check=True, timeout=60, capture_output=True,
            text=True,
        ).stdout.split()[2]  # fmt: skip

    with ThreadPoolExecutor(1) as pool:
        made = pool.submit(make_token)  # the operator's user, while worker and beat start (3 s of the test)
        worker = wait_healthy("worker", port, env, timeout=90)
        assert worker.returncode == 0, worker.stdout[-2000:] + worker.stderr[-2000:] + log("worker")
        beat = wait_healthy("beat", port, env, timeout=90)
        assert beat.returncode == 0, beat.stderr[-2000:] + log("beat")
        token = made.result()
    headers = {"Authorization": f"Token {token}", **PROXY_HEADERS}
    run_at = (datetime.now(UTC) + timedelta(seconds=3)).replace(microsecond=0).isoformat()
    created = requests.post(f"{url}/api/jobs/", headers=headers, timeout=10, json={
        "id": "deploy-check", "kind": "python", "handler": "scripts:sleepy", "handler_kwargs": {"seconds": 4},
        "run_at": run_at, "timeout_seconds": 30,
    })  # fmt: skip
    assert created.status_code == 201, created.text

    def runs() -> list[dict]:
        return requests.get(f"{url}/api/jobs/deploy-check/runs/", headers=headers, timeout=5).json()["results"]

    assert wait_for(lambda: [r for r in runs() if r["status"] == "running"], 30), (
        deployment["logs"] / "worker.log"
    ).read_text()[-3000:]

    procs = deployment["procs"]
    trees = {
        name: [p.pid] + [c.pid for c in psutil.Process(p.pid).children(recursive=True)] for name, p in procs.items()
    }
    for name in ("beat", "worker"):
        procs[name].send_signal(signal.SIGTERM)  # what docker compose stop sends
    assert procs["worker"].wait(timeout=60) == 0
    assert procs["beat"].wait(timeout=30) == 0
    (run,) = runs()
    assert run["status"] == "success", run  # the running job finished during the warm shutdown
    procs["web"].send_signal(signal.SIGTERM)
    assert procs["web"].wait(timeout=30) == 0
    alive = [
        pid
        for pids in trees.values()
        for pid in pids
        if psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    ]
    assert alive == []
    worker_log = (deployment["logs"] / "worker.log").read_text()
    assert '"run_id"' in worker_log  # structured, one JSON object per line
    assert '"job_id": "deploy-check"' in worker_log
