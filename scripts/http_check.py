"""Check that a URL answers with the expected status, and log how long it took."""

from __future__ import annotations

import time

import requests

from jobs.handlers import task_log

TASK_INFO = {
    "name": "HTTP check",
    "description": "Fail unless the URL answers with the expected status code within the timeout.",
}


def run(url: str, expect_status: int = 200, timeout: float = 5.0) -> dict:
    started = time.monotonic()
    response = requests.get(url, timeout=timeout)
    elapsed_ms = round((time.monotonic() - started) * 1000, 1)
    task_log(f"{url} answered {response.status_code} in {elapsed_ms} ms")
    if response.status_code != expect_status:
        raise RuntimeError(f"{url} answered {response.status_code}, expected {expect_status}")
    return {"status_code": response.status_code, "elapsed_ms": elapsed_ms}
