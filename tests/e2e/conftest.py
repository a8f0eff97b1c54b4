"""Start the whole system as real processes with the README's command, ``bin/run`` (which runs
``manage.py runall``: web, worker, beat).

``embedded``: the defaults, SQLite and the filesystem broker in a temporary var/ directory.
``services``: the PostgreSQL and Redis/RabbitMQ that DATABASE_URL and CELERY_BROKER_URL name (CI
sets both), on a database and a queue of the test's own, dropped afterwards.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psutil
import psycopg
import pytest
import requests

from tests.http_target import HttpTarget

ROOT = Path(__file__).resolve().parents[2]
ADMIN_PASSWORD = "e2e-Admin-passw0rd"


@dataclass
class System:
    base_url: str
    token: str
    env: dict[str, str]
    proc: subprocess.Popen
    log: Path

    def api(self, method: str, path: str, **kwargs) -> requests.Response:
        headers = {"Authorization": f"Token {self.token}"}
        return requests.request(method, f"{self.base_url}{path}", headers=headers, timeout=10, **kwargs)

    def manage(self, *args: str) -> str:
        done = subprocess.run(
            [sys.executable, str(ROOT / "manage.py"), *args],
            env=self.env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        return done.stdout

    def runs(self, job_id: str) -> list[dict]:
        response = self.api("GET", f"/api/jobs/{job_id}/runs/?limit=1000")
        response.raise_for_status()
        return response.json()["results"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _postgres_database(base_url: str, template: str | None = None) -> tuple[str, str]:
    """Create a database beside the one ``base_url`` names, empty or a copy of ``template``;
    returns (its URL, the DSN of the server's ``postgres`` database)."""
    name = f"crontask_e2e_{uuid.uuid4().hex[:8]}"
    parts = urlsplit(base_url)
    admin_dsn = urlunsplit(parts._replace(scheme="postgresql", path="/postgres"))
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
    return urlunsplit(parts._replace(path=f"/{name}")), admin_dsn


def _drop_database(admin_dsn: str, name: str) -> None:
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _wait_healthy(url: str, proc: subprocess.Popen, log: Path, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"runall exited with {proc.returncode}:\n{log.read_text()[-4000:]}")
        try:
            if requests.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.3)
    pytest.fail(f"the web process did not answer within {timeout} s:\n{log.read_text()[-4000:]}")


def stop_system(proc: subprocess.Popen, timeout: float = 45) -> tuple[int | None, list[int]]:
    """SIGTERM runall as Ctrl-C would; return its exit code and the PIDs of its tree still alive."""
    try:
        tree = [proc.pid] + [child.pid for child in psutil.Process(proc.pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        tree = [proc.pid]
    proc.send_signal(signal.SIGTERM)
    try:
        code = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        code = None
    survivors = [pid for pid in tree if psutil.pid_exists(pid) and psutil.Process(pid).status() != "zombie"]
    for pid in survivors:  # never leave a process behind, even when the test fails
        os.kill(pid, signal.SIGKILL)
    if code is None:
        proc.kill()
        proc.wait()
    return code, survivors


def backends() -> list:
    services = pytest.param(
        "services",
        marks=pytest.mark.skipif(
            not os.environ.get("DATABASE_URL", "").startswith("postgres"),
            reason="set DATABASE_URL (postgres://) and CELERY_BROKER_URL to run against real services",
        ),
    )
    return ["embedded", services]


@pytest.fixture(scope="session")
def migrated_template() -> Iterator[str]:
    """The name of a PostgreSQL database migrated once, for tests whose subject is not the migration
    to copy (``_postgres_database(url, template=...)``, a file copy) instead of migrating their own."""
    db_url, admin_dsn = _postgres_database(os.environ["DATABASE_URL"])
    name = urlsplit(db_url).path.lstrip("/")
    try:
        env = {**os.environ, "DATABASE_URL": db_url}
        migrate = [sys.executable, "manage.py", "migrate", "-v0", "--skip-checks"]
        subprocess.run(migrate, cwd=ROOT, env=env, check=True, timeout=120)
        yield name
    finally:
        _drop_database(admin_dsn, name)


@pytest.fixture(scope="module")
def target() -> Iterator[HttpTarget]:
    with HttpTarget() as server:
        yield server


@pytest.fixture(scope="module", params=backends())
def system(request, tmp_path_factory) -> Iterator[System]:
    """One running system per backend, shared by the module's tests in order."""
    tmp_path = tmp_path_factory.mktemp(f"e2e-{request.param}")
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "CELERY_BROKER_URL")}
    env.update(getattr(request.module, "SYSTEM_ENV", {}))  # a test module's own settings
    env.update(
        {
            "CRONTASK_VAR_DIR": str(tmp_path / "var"),
            "CRONTASK_ADMIN_PASSWORD": ADMIN_PASSWORD,
            "CRONTASK_QUEUE": f"e2e-{uuid.uuid4().hex[:8]}",
            "PYTHONUNBUFFERED": "1",
        }
    )
    cleanup = []
    if request.param == "services":
        db_url, admin_dsn = _postgres_database(os.environ["DATABASE_URL"])
        env["DATABASE_URL"] = db_url
        env["CELERY_BROKER_URL"] = os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/0")
        cleanup.append(lambda: _drop_database(admin_dsn, urlsplit(db_url).path.lstrip("/")))
    port = _free_port()
    log = tmp_path / "runall.log"
    with log.open("wb") as out:
        # bin/run bootstraps .venv (a no-op when its requirements are installed), then execs runall:
        # the process is runall itself, so stop_system's SIGTERM reaches it as Ctrl-C would.
        proc = subprocess.Popen(
            [str(ROOT / "bin" / "run"), "--port", str(port), "--concurrency", "4"],
            env=env,
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        base_url = f"http://127.0.0.1:{port}"
        _wait_healthy(base_url, proc, log)
        system = System(base_url=base_url, token="", env=env, proc=proc, log=log)
        system.token = system.manage("drf_create_token", "admin").split()[2]
        yield system
    finally:
        if proc.poll() is None:
            stop_system(proc)
        for step in cleanup:
            step()
