"""Return (or fail with) a large value: to see it cut at the output limit, not lost."""

from __future__ import annotations


def run(size: int = 100_000, char: str = "x", fail: bool = False) -> dict:
    if fail:
        raise ValueError(char * size)
    return {"data": char * size}
