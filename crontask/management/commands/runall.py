"""Run the whole system in the foreground: web, Celery worker and Celery beat.

Makes the embedded defaults' files first (``var/``, the broker's folders, the secret key: what
``init_var`` makes), migrates, creates the admin user on first start, then supervises the three
processes: when one dies or the command is stopped (Ctrl-C, SIGTERM, or SIGHUP when its terminal
is closed), all three are stopped, their process groups included, so nothing is left behind.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandParser, OutputWrapper
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop

from core import multiprocess
from core.commands import TranslatedCommand
from crontask.bootstrap import ensure_admin_user, prepare_var_dir

STOP_GRACE_SECONDS = 30
# The children lead sessions of their own, so the terminal's SIGINT and SIGHUP reach only this
# process: each of these must stop them all, or closing the terminal leaves them running.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Command(TranslatedCommand):
    help = gettext_noop("Run web, worker and beat together (the embedded defaults need nothing else).")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--host",
            default=os.environ.get("CRONTASK_HOST", "127.0.0.1"),
            help=_("Address the web server listens on (default: CRONTASK_HOST or 127.0.0.1)."),
        )
        parser.add_argument(
            "--port",
            type=int,
            default=int(os.environ.get("CRONTASK_PORT", "8000")),
            help=_("Port of the web server (default: CRONTASK_PORT or 8000)."),
        )
        parser.add_argument("--concurrency", type=int, default=None, help=_("Worker processes (default: CPUs)."))

    def execute(self, *args: Any, **options: Any) -> str | None:
        # Before the system checks (which warn about a missing var/) and before any process that
        # reads the key starts: web, worker and beat all read the one this makes.
        prepare_var_dir()
        return super().execute(*args, **options)

    def handle(self, *args: Any, host: str, port: int, concurrency: int | None, **options: Any) -> None:
        call_command("migrate", interactive=False, verbosity=0)
        call_command("collectstatic", interactive=False, verbosity=0)
        password = ensure_admin_user(password=os.environ.get("CRONTASK_ADMIN_PASSWORD", ""))
        url = f"http://{host}:{port}/admin/"
        self.stdout.write(_("Crontask admin: %(url)s  (user: admin)") % {"url": url})
        if password:
            self.stdout.write(
                _("Generated admin password (shown only this once): %(password)s") % {"password": password}
            )
        self.stdout.write(_("API token: python manage.py drf_create_token admin"))
        self.stdout.flush()
        # The metrics of the last run of these processes go: counts start again from 0 (Prometheus
        # takes it as a restart), and the directory holds only the files of processes running now.
        multiprocess.clear(settings.PROMETHEUS_MULTIPROC_DIR)
        sys.exit(self._supervise(self._commands(host, port, concurrency)))

    def _commands(self, host: str, port: int, concurrency: int | None) -> dict[str, list[str]]:
        manage = str(Path(settings.BASE_DIR) / "manage.py")
        worker = [sys.executable, "-m", "celery", "-A", "crontask", "worker", "-l", "INFO", "-n", "worker@%h"]
        if concurrency:
            worker += ["--concurrency", str(concurrency)]
        return {
            "web": [sys.executable, manage, "runserver", f"{host}:{port}", "--noreload", "--skip-checks"],
            "worker": worker,
            "beat": [sys.executable, "-m", "celery", "-A", "crontask", "beat", "-l", "INFO"],
        }

    def _supervise(self, commands: dict[str, list[str]]) -> int:
        stopping = False

        def request_stop(signum: int, frame: object) -> None:
            nonlocal stopping
            stopping = True

        previous = {sig: signal.signal(sig, request_stop) for sig in STOP_SIGNALS}
        try:
            # Each child leads its own process group, so stopping it reaches its children too
            # (the worker's pool processes).
            procs = {
                name: subprocess.Popen(cmd, cwd=settings.BASE_DIR, start_new_session=True)
                for name, cmd in commands.items()
            }
            started = ", ".join(_("%(name)s (pid %(pid)s)") % {"name": name, "pid": p.pid} for name, p in procs.items())
            _say(self.stdout, _("Started %(processes)s") % {"processes": started})
            exit_code = 0
            while not stopping:
                dead = [name for name, p in procs.items() if p.poll() is not None]
                if dead:
                    _say(self.stderr, _("%(processes)s exited; stopping the others.") % {"processes": ", ".join(dead)})
                    exit_code = 1
                    break
                time.sleep(0.5)
            _stop_all(list(procs.values()))
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        return exit_code


def _say(stream: OutputWrapper, text: str) -> None:
    # After SIGHUP the terminal is gone and writing to it fails (EIO): stopping matters more.
    with contextlib.suppress(OSError):
        stream.write(text)
        stream.flush()


def _stop_all(procs: list[subprocess.Popen]) -> None:
    # The leader alone gets SIGTERM: the Celery worker then finishes its running tasks before
    # stopping its pool; a SIGTERM sent to the pool processes directly would kill those tasks.
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    for proc in procs:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
    for proc in procs:
        # SIGKILL whatever is left in the group, including a pool process that outlived its parent.
        _signal_group(proc, signal.SIGKILL)
        proc.wait()


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)
