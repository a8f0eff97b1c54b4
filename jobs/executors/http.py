"""Run an http job: one request with requests, the body read up to the output limit."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import requests

from jobs.executors.base import Outcome, clip

USER_AGENT = "crontask/1.0"


def execute_http(
    *,
    method: str,
    url: str,
    headers: Mapping[str, str],
    body: str,
    timeout: float,
    max_bytes: int,
) -> Outcome:
    """A 2xx or 3xx answer is a success; anything else, or no answer, is a failure.

    ``timeout`` bounds the whole exchange, not only each socket read: the body is streamed and
    reading stops at the deadline.
    """
    deadline = time.monotonic() + timeout
    request_headers: dict[str, Any] = {"User-Agent": USER_AGENT, **headers}
    try:
        with requests.request(
            method,
            url,
            headers=request_headers,
            data=body.encode() if body else None,
            timeout=timeout,
            stream=True,
        ) as response:
            content, complete = _read_body(response, max_bytes=max_bytes, deadline=deadline)
    except requests.Timeout:
        return Outcome(status="timeout", error=f"No answer within {timeout:g} s.")
    except requests.RequestException as exc:
        return Outcome(status="failed", error=f"{type(exc).__name__}: {_short(exc)}")
    if not complete:
        return Outcome(
            status="timeout",
            status_code=response.status_code,
            response_body=clip(content, max_bytes),
            error=f"The response body was still arriving after {timeout:g} s.",
        )
    ok = 200 <= response.status_code < 400
    return Outcome(
        status="success" if ok else "failed",
        status_code=response.status_code,
        response_body=clip(content, max_bytes),
        error="" if ok else f"HTTP {response.status_code} {response.reason or ''}".strip(),
    )


def _read_body(response: requests.Response, *, max_bytes: int, deadline: float) -> tuple[bytes, bool]:
    """Read the body, keeping max_bytes (+1 to know it was cut); False if the deadline passed."""
    kept = bytearray()
    for chunk in response.iter_content(chunk_size=16384):
        if len(kept) <= max_bytes:
            kept += chunk
        if time.monotonic() > deadline:
            return bytes(kept), False
    return bytes(kept), True


def _short(exc: Exception) -> str:
    text = str(exc)
    return text if len(text) <= 500 else text[:500] + "…"
