"""Where prometheus_client's multiprocess mode keeps each process's metrics, and how a process is
named there. Nothing here reads Django's settings: gunicorn's master, which loads no Django,
uses it too (``gunicorn.conf.py``'s ``child_exit``).

Each process writes its counters and histograms to files of its own in the directory
(``counter_<host>-<pid>.db``), and ``GET /metrics`` adds up every file it finds there
(``monitoring.metrics``): the processes that share the directory add up. A process is named by
its host and its process id, not the id alone, so that containers sharing one volume (each
numbering its processes from 1) never write to the same file.
"""

from __future__ import annotations

import os
import re
import socket
from pathlib import Path

ENV = "PROMETHEUS_MULTIPROC_DIR"
_BASE_DIR = Path(__file__).resolve().parent.parent
# The host's name, once: it does not change under a process, and this is read on every increment.
# Without "_", which prometheus_client reads as the separator of the file name's parts.
_HOST = re.sub(r"[^A-Za-z0-9.-]", "-", socket.gethostname()) or "host"


def metrics_dir(var_dir: Path | str | None = None) -> Path:
    """``PROMETHEUS_MULTIPROC_DIR`` when it is set, else ``metrics/`` in ``var_dir`` (by default
    ``CRONTASK_VAR_DIR``, else ``var/``: the settings' own default)."""
    configured = os.environ.get(ENV, "").strip()
    if configured:
        return Path(configured)
    if var_dir is None:
        var_dir = os.environ.get("CRONTASK_VAR_DIR") or _BASE_DIR / "var"
    return Path(var_dir) / "metrics"


def process_identifier(pid: int | None = None) -> str:
    """This process's name in the directory's file names (or that of process ``pid`` of this host)."""
    return f"{_HOST}-{os.getpid() if pid is None else pid}"


def mark_process_dead(pid: int, directory: Path | str | None = None) -> None:
    """Forget the live gauges of process ``pid`` of this host, which has ended. Its counters and
    histograms stay: what it counted stays in the totals, which never go down."""
    from prometheus_client import multiprocess  # only when a process ends: gunicorn's master needs no more

    multiprocess.mark_process_dead(process_identifier(pid), str(directory or metrics_dir()))


def clear(directory: Path | str) -> int:
    """Delete the metric files in ``directory`` (every count starts again from 0): only while no
    process that writes there is running (``runall`` does, before it starts web, worker and beat).
    Returns how many were deleted."""
    deleted = 0
    for path in Path(directory).glob("*.db"):
        try:
            path.unlink()
        except FileNotFoundError:
            continue
        deleted += 1
    return deleted
