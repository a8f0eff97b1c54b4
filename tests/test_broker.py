"""The embedded broker (kombu's filesystem transport): a worker never takes a half-written message."""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys
import time
from pathlib import Path
from queue import Empty

from kombu import Connection

ROOT = Path(__file__).resolve().parents[1]
MESSAGES = 1_000
PAYLOAD = {"body": "x" * 200_000, "headers": {}, "properties": {}}


def _channel(folder: Path):
    options = {
        "data_folder_in": str(folder / "queue"),
        "data_folder_out": str(folder / "queue"),
        "processed_folder": str(folder / "processed"),
        "control_folder": str(folder / "control"),
        "store_processed": False,
    }
    return Connection("filesystem://", transport="core.broker:Transport", transport_options=options).default_channel


def _write(folder: Path) -> None:  # in a child process, as beat or the web app would
    channel = _channel(folder)
    for n in range(MESSAGES):
        channel._put("jobs", {**PAYLOAD, "n": n})


def test_messages_written_by_another_process_are_read_whole_while_they_are_being_written(tmp_path):
    for sub in ("queue", "processed", "control"):
        (tmp_path / sub).mkdir()
    reader = _channel(tmp_path)
    writer = multiprocessing.get_context("fork").Process(target=_write, args=(tmp_path,))
    writer.start()
    got: list[dict] = []
    errors: list[ValueError] = []
    try:
        deadline = time.monotonic() + 120
        while len(got) < MESSAGES and time.monotonic() < deadline and not errors:
            try:
                got.append(reader._get("jobs"))
            except Empty:
                pass
            except ValueError as exc:  # JSONDecodeError: a file taken before it was complete
                errors.append(exc)
    finally:
        writer.join(timeout=60)
        if writer.is_alive():
            writer.kill()
    assert errors == []
    assert sorted(message["n"] for message in got) == list(range(MESSAGES))
    assert all(message["body"] == PAYLOAD["body"] for message in got)
    assert os.listdir(tmp_path / "queue") == []


def test_the_default_broker_uses_the_atomic_filesystem_transport(tmp_path):
    code = (
        "import django, json; django.setup(); from crontask.celery import app;"
        "c = app.connection_for_write(); cls = c.get_transport_cls();"
        "print(json.dumps([cls.__module__, cls.__name__]))"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "CELERY_BROKER_URL")}
    env.update(CRONTASK_VAR_DIR=str(tmp_path), DJANGO_SETTINGS_MODULE="crontask.settings")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    assert json.loads(done.stdout.strip().splitlines()[-1]) == ["core.broker", "Transport"]
