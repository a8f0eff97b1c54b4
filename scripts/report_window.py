"""An example with typed parameters and expressions: summarise a window of days."""

from __future__ import annotations

import datetime

from jobs.handlers import task_log

TASK_INFO = {
    "name": "Report a window of days",
    "description": "Shows typed parameters; start may be an expression such as date.today() - timedelta(days=1).",
}


async def run(
    days: int = 7,
    target: str = "all",
    start: datetime.date | None = None,
    options: dict | None = None,
) -> dict:
    """Report ``days`` days for ``target`` starting at ``start`` (default: today)."""
    start = start or datetime.date.today()
    if isinstance(start, str):
        start = datetime.date.fromisoformat(start[:10])
    end = start + datetime.timedelta(days=days)
    task_log("reporting", target, "from", start.isoformat(), "to", end.isoformat())
    return {"target": target, "start": start.isoformat(), "end": end.isoformat(), "options": options or {}}
