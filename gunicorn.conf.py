"""gunicorn's configuration for the web process: ``gunicorn -c gunicorn.conf.py crontask.wsgi``
(the image's CMD and docker-compose.yml's web command).

Several worker processes, each with several threads, so that one slow request (or one client
sending many) does not hold the whole web process. Sized from the CPUs this process may use:

- ``WEB_CONCURRENCY``: worker processes; default 2 x CPUs + 1, at most 8.
- ``WEB_THREADS``: threads per worker process; default 4.
- ``PORT``: the port to listen on, on every interface; default 8000.

Each thread of each worker may hold a database connection (CONN_MAX_AGE), so the default stops
at 8 x 4 = 32 connections, well under PostgreSQL's default max_connections (100) with workers
and beat beside it; on a bigger host set WEB_CONCURRENCY and the database's limit together.
Settings on the command line or in GUNICORN_CMD_ARGS override these.
"""

from __future__ import annotations

import os
from typing import Any

MAX_DEFAULT_WORKERS = 8


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SystemExit(f"{name} must be a whole number, not {raw!r}") from None
    if value < 1:
        raise SystemExit(f"{name} must be at least 1, not {value}")
    return value


def cpu_count() -> int:
    """The CPUs this process may run on (a container's cpuset), else all of the host's."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def child_exit(server: object, worker: Any) -> None:
    """A worker process ended: its live gauges go from the metrics directory (core.multiprocess;
    its counts stay). Imported here, when gunicorn has put the project on sys.path."""
    from core.multiprocess import mark_process_dead

    mark_process_dead(worker.pid)


workers = _env_int("WEB_CONCURRENCY", min(2 * cpu_count() + 1, MAX_DEFAULT_WORKERS))
threads = _env_int("WEB_THREADS", 4)
worker_class = "gthread"
bind = [f"0.0.0.0:{_env_int('PORT', 8000)}"]
accesslog = "-"
