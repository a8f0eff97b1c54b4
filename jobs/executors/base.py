"""What an executor returns, and the helpers every executor shares."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Outcome:
    """How a run ended. ``status`` is one of Run.Status; the other fields are what applies."""

    status: str
    status_code: int | None = None
    response_body: str = ""
    result: Any = None
    exit_code: int | None = None
    output: str = ""
    error: str = ""
    traceback: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def clip(data: bytes | str, max_bytes: int) -> str:
    """Text cut at ``max_bytes`` (UTF-8), with a marker saying how much was left out."""
    raw = data.encode() if isinstance(data, str) else data
    if len(raw) <= max_bytes:
        return raw.decode("utf-8", errors="replace")
    kept = raw[:max_bytes].decode("utf-8", errors="ignore")
    return f"{kept}\n[… truncated: {len(raw) - max_bytes} more bytes not kept]"
