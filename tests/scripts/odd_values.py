"""Values PostgreSQL refuses as they are: NaN and infinities (jsonb), NUL (text and jsonb)."""

from __future__ import annotations

from jobs.handlers import task_log


def run(fail: bool = False) -> dict:
    task_log("logged a\x00b")
    print("printed c\x00d")
    if fail:
        raise ValueError("failed e\x00f")
    return {
        "nan": float("nan"),
        "inf": float("inf"),
        "minus_inf": float("-inf"),
        "text": "g\x00h",
        "key\x00": [float("nan"), 1.5],
    }
