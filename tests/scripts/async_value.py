from __future__ import annotations

import asyncio

from jobs.handlers import task_log


async def run(value: int = 1) -> dict:
    await asyncio.sleep(0.01)
    task_log("async", "handler", value)
    return {"doubled": value * 2}
