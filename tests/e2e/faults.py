"""What the fault tests break, and how they count.

- ``RedisServer``: a redis-server of the test's own on a free port (no persistence, like this
  machine's), which the test kills and starts again.
- ``RabbitVhost``: a RabbitMQ virtual host the test creates (and deletes), reached through a
  ``TcpProxy`` the test owns, which it cuts (every connection closed, new ones refused) and
  restores. The machine's RabbitMQ itself is never stopped.
- ``terminate_connections``: ``pg_terminate_backend`` on the test database's connections only.
- ``Cluster``: web, worker and beat as separate real processes on a database of the test's own,
  each in its own process group, killed by PID at the end.
- ``Ledger``: the fires due per (job, scheduled_for), the runs the database holds and the calls
  the target received, and what each fire came to.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import requests

from tests.e2e.conftest import _drop_database, _postgres_database
from tests.http_target import HttpTarget

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(check, timeout: float, every: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(every)
    return bool(check())


# Runs a module (``python -c SKEWED celery …``) with the process's clock moved by ``offset`` seconds.
SKEWED = (
    "import sys, runpy, datetime, time_machine; "
    "time_machine.travel(datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds={offset})).start(); "
    "sys.argv = sys.argv[1:]; runpy.run_module(sys.argv[0], run_name='__main__', alter_sys=True)"
)


class RedisServer:
    """A redis-server of the test's own, without persistence: a restart loses every message."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        log = (self.workdir / "redis.log").open("ab")
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.workdir)],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        assert wait_for(self._answers, 10), (self.workdir / "redis.log").read_text()

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False


class TcpProxy:
    """Forwards 127.0.0.1:<port> to a service the test must not stop. ``cut`` closes every
    connection and refuses new ones (as a broker that went away); ``restore`` listens again."""

    def __init__(self, upstream_port: int) -> None:
        self.port = free_port()
        self.upstream_port = upstream_port
        self.loop = asyncio.new_event_loop()
        self.server: asyncio.Server | None = None
        self.writers: set[asyncio.StreamWriter] = set()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def restore(self) -> None:
        self._call(self._listen())

    def cut(self) -> None:
        self._call(self._cut())

    def close(self) -> None:
        self._call(self._cut())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)

    def _call(self, coro) -> None:
        asyncio.run_coroutine_threadsafe(coro, self.loop).result(10)

    async def _listen(self) -> None:
        self.server = await asyncio.start_server(self._pipe, "127.0.0.1", self.port, reuse_address=True)

    async def _cut(self) -> None:
        if self.server is not None:
            self.server.close()
            self.server = None
        for writer in list(self.writers):
            writer.transport.abort()
        self.writers.clear()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            writer.transport.abort()
            return
        self.writers |= {writer, up_writer}

        async def copy(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, asyncio.IncompleteReadError):
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            sink.transport.abort()

        await asyncio.gather(copy(reader, up_writer), copy(up_reader, writer))
        self.writers -= {writer, up_writer}


class RabbitVhost:
    """A virtual host of the test's own on the machine's RabbitMQ, behind a ``TcpProxy``."""

    def __init__(self) -> None:
        self.name = f"crontask-test-{uuid.uuid4().hex[:8]}"
        self.proxy = TcpProxy(5672)

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.proxy.port}/{self.name}"

    def create(self) -> None:
        _rabbitmqctl("add_vhost", self.name)
        _rabbitmqctl("set_permissions", "-p", self.name, "guest", ".*", ".*", ".*")
        self.proxy.restore()

    def delete(self) -> None:
        self.proxy.close()
        _rabbitmqctl("delete_vhost", self.name)


def _rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=60)


class Terminator:
    """Terminates the test database's connections every ``every`` seconds, from a thread."""

    def __init__(self, dsn: str, database: str, every: float = 0.5) -> None:
        self.dsn = dsn
        self.database = database
        self.every = every
        self.killed = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> Terminator:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def _loop(self) -> None:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            while not self._stop.wait(self.every):
                rows = conn.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = %s AND pid <> pg_backend_pid()",
                    [self.database],
                ).fetchall()
                self.killed += sum(1 for (ok,) in rows if ok)


@dataclass
class Cluster:
    """Web, worker and beat as real processes, on a database of their own."""

    tmp: Path
    broker_url: str
    env_extra: dict[str, str] = field(default_factory=dict)
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)
    #: The port the processes reach PostgreSQL on (a TcpProxy's), if not its own.
    database_port: int | None = None
    #: A migrated database to copy (the ``migrated_template`` fixture's) instead of migrating.
    template: str | None = None
    #: Jobs to create with the API's user (as ``create_jobs``, in the same process).
    jobs: dict[str, dict] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.db_url, self.admin_dsn = _postgres_database(os.environ["DATABASE_URL"], self.template)
        self.database = urlsplit(self.db_url).path.lstrip("/")
        self.dsn = urlunsplit(urlsplit(self.db_url)._replace(scheme="postgresql"))
        self.port = free_port()
        app_db_url = self.db_url
        if self.database_port is not None:
            parts = urlsplit(self.db_url)
            app_db_url = urlunsplit(parts._replace(netloc=f"{parts.username}@127.0.0.1:{self.database_port}"))
        self.env = {
            **os.environ,
            "DATABASE_URL": app_db_url,
            "CELERY_BROKER_URL": self.broker_url,
            "CRONTASK_QUEUE": f"faults-{uuid.uuid4().hex[:8]}",
            "CRONTASK_VAR_DIR": str(self.tmp / "var"),
            "PROMETHEUS_MULTIPROC_DIR": str(self.tmp / "var" / "metrics"),  # the cluster's, not the tests'
            "PYTHONUNBUFFERED": "1",
            **self.env_extra,
        }
        if self.template is None:
            self.manage("migrate", "-v0")
        # init_var: the key web reads, as bin/run makes it; then the jobs, the API's user and token.
        token = self.manage(
            "shell", "-c",
            "from django.core.management import call_command; call_command('init_var')\n"
            + _system_job_away_code() + _jobs_code(self.jobs) +
            "from django.contrib.auth.models import User; from rest_framework.authtoken.models import Token; "
            "print(Token.objects.create(user=User.objects.create_superuser('faults', '', 'pw')).key)",
        ).split()[-1]  # fmt: skip
        self.auth = {"Authorization": f"Token {token}"}

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def manage(self, *args: str) -> str:
        return subprocess.run(
            [sys.executable, "manage.py", *args], cwd=ROOT, env=self.env, check=True, timeout=120,
            capture_output=True, text=True,
        ).stdout  # fmt: skip

    def create_jobs(self, jobs: dict[str, dict]) -> None:
        self.manage("shell", "-c", _jobs_code(jobs))

    def start(self, worker_concurrency: int = 3) -> None:
        for name in ("web", "worker", "beat"):
            self.start_one(name, worker_concurrency=worker_concurrency)
        assert wait_for(self._web_answers, 60), self.log("web")

    def start_one(self, name: str, *, worker_concurrency: int = 3, clock_offset: float = 0.0) -> subprocess.Popen:
        """Start web, worker or beat (``beat-2``: a second one); ``clock_offset`` seconds sets its
        clock ahead (or behind), as a machine whose clock is not in step would."""
        celery = ["-m", "celery", "-A", "crontask"]
        command = {
            "web": ["manage.py", "runserver", f"127.0.0.1:{self.port}", "--noreload", "--skip-checks"],
            "worker": [*celery, "worker", "-l", "INFO", "--concurrency", str(worker_concurrency), "-n", f"{name}@%h"],
            "beat": [*celery, "beat", "-l", "INFO"],
        }[name.split("-")[0]]
        if clock_offset:  # celery only: ["-m", "celery", ...]
            command = ["-c", SKEWED.format(offset=clock_offset), *command[1:]]
        log = (self.tmp / f"{name}.log").open("ab")
        self.procs[name] = subprocess.Popen(
            [sys.executable, *command], cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        return self.procs[name]

    def kill(self, name: str) -> None:
        """SIGKILL a process and everything it started (a worker's pool)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.procs[name].pid, signal.SIGKILL)
        self.procs.pop(name).wait()

    def exited(self) -> dict[str, int | None]:
        return {name: proc.returncode for name, proc in self.procs.items() if proc.poll() is not None}

    def log(self, name: str) -> str:
        return (self.tmp / f"{name}.log").read_text(errors="replace")

    def stop(self) -> None:
        for proc in self.procs.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        _drop_database(self.admin_dsn, self.database)

    def query(self, sql: str, params: tuple = ()) -> list[tuple]:
        with psycopg.connect(self.dsn) as conn:
            return conn.execute(sql, params).fetchall()

    def _web_answers(self) -> bool:
        try:
            return requests.get(f"{self.base_url}/health", timeout=2).status_code == 200
        except requests.ConnectionError:
            return False


def _system_job_away_code() -> str:
    """Python for ``manage.py shell`` that makes the system jobs now (beat would, at its start) and
    moves the daily ``cleanup-runs`` to 12 hours from now. The tests count every run and every fire
    of the cluster; the one cleanup of a day fell in a test that ran at 03:17 UTC and was counted."""
    hour = (datetime.now(UTC) + timedelta(hours=12)).hour
    return (
        "from jobs.models import Job\n"
        "from runs.retention import CLEANUP_JOB_ID\n"
        "from jobs import services\n"
        "services.ensure_system_jobs()\n"
        "services.job_update(job=Job.objects.get(pk=CLEANUP_JOB_ID), "
        f"data={{'cron': '17 {hour} * * *', 'timezone': 'UTC'}})\n"
    )


def _jobs_code(jobs: dict[str, dict]) -> str:
    """Python for ``manage.py shell`` that creates ``jobs`` (id -> the API's fields) with the services."""
    return "from jobs import services\n" + "".join(
        f"services.job_create(data={{'id': {job_id!r}, **{data!r}}})\n" for job_id, data in jobs.items()
    )


@contextlib.contextmanager
def cluster(
    tmp: Path,
    broker_url: str,
    *,
    database_port: int | None = None,
    template: str | None = None,
    jobs: dict[str, dict] | None = None,
    env: Mapping[str, str] | None = None,
) -> Iterator[Cluster]:
    made = Cluster(
        tmp=tmp,
        broker_url=broker_url,
        env_extra=dict(env or {}),
        database_port=database_port,
        template=template,
        jobs=jobs or {},
    )
    try:
        yield made
    finally:
        made.stop()


Fire = tuple[str, datetime]  # (job id, scheduled_for)


@dataclass
class Ledger:
    """What each fire of the test's jobs came to: its runs, and the calls the target received."""

    runs: dict[tuple[str, datetime, int], tuple[str, str]]  # (job, fire, attempt) -> (status, error)
    calls: Counter[tuple[str, datetime, int]]  # (job, fire, attempt) -> calls received
    manual_calls: Counter[int]  # run id -> calls received

    @classmethod
    def read(cls, cluster: Cluster, target: HttpTarget, until: datetime | None = None) -> Ledger:
        """The fires' runs and calls; only those of the fires due by ``until`` when it is given (the
        jobs go on firing: later fires may still be under way)."""
        rows = cluster.query(
            "SELECT job_id, scheduled_for, attempt, status, error FROM runs_run WHERE scheduled_for IS NOT NULL "
            "AND (%s::timestamptz IS NULL OR scheduled_for <= %s::timestamptz)",
            (until, until),
        )
        calls: Counter[tuple[str, datetime, int]] = Counter()
        manual: Counter[int] = Counter()
        for _method, _path, headers, _body in list(target.requests):
            when = headers.get("X-Crontask-Scheduled-For")
            if not when:
                manual[int(headers["X-Crontask-Run-Id"])] += 1
            elif until is None or datetime.fromisoformat(when) <= until:
                job_id, attempt = headers["X-Crontask-Job-Id"], int(headers["X-Crontask-Attempt"])
                calls[(job_id, datetime.fromisoformat(when), attempt)] += 1
        return cls(runs={(j, f, a): (s, e) for j, f, a, s, e in rows}, calls=calls, manual_calls=manual)

    def unfinished(self) -> list:
        return [key for key, (status, _) in self.runs.items() if status in ("queued", "running")]

    def problems(self, due: list[Fire], *, succeeding: set[str]) -> list[str]:
        """Every way the fires ``due`` were not accounted for exactly (empty when all were)."""
        found = []
        for job_id, at in due:
            if (job_id, at, 1) not in self.runs:
                found.append(f"{job_id} {at:%H:%M:%S}: no run")
        for (job_id, at, attempt), (status, error) in sorted(self.runs.items()):
            calls = self.calls[(job_id, at, attempt)]
            fire = f"{job_id} {at:%H:%M:%S} attempt {attempt}"
            if status in ("queued", "running"):
                found.append(f"{fire}: still {status}")
            elif status in ("success", "failed", "timeout") and calls != 1:
                found.append(f"{fire}: {status} with {calls} calls")
            elif status == "skipped" and (calls or not error):
                found.append(f"{fire}: skipped with {calls} calls, reason {error!r}")
            elif status == "lost" and (calls > 1 or not error):
                found.append(f"{fire}: lost with {calls} calls, reason {error!r}")
            if job_id in succeeding and calls and status != "success":
                found.append(f"{fire}: the target answered 200, recorded {status} ({error})")
        for key, calls in self.calls.items():
            if key not in self.runs:
                found.append(f"{key}: {calls} call(s) with no run")
        return found


def fires_due(crons: dict[str, tuple[int, int]], start: datetime, end: datetime) -> list[Fire]:
    """The fires of jobs firing every ``period`` seconds at ``offset`` past it, in [start, end]."""
    due = []
    for job_id, (period, offset) in crons.items():
        at = start.replace(microsecond=0)
        while at <= end:
            if at >= start and at.second % period == offset:
                due.append((job_id, at))
            at += timedelta(seconds=1)
    return due


def now() -> datetime:
    return datetime.now(tz=UTC)
