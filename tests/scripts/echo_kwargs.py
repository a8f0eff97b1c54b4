"""Return the arguments it was given (typed)."""

from __future__ import annotations

import datetime

TASK_INFO = {"name": "Echo", "description": "Returns its arguments."}


def run(count: int, label: str = "x", when: datetime.datetime | None = None, tags: list | None = None) -> dict:
    return {"count": count, "label": label, "when": when, "tags": tags}
