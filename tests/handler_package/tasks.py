from __future__ import annotations


def add(a: int, b: int = 0) -> int:
    return a + b


def _private() -> None:
    pass
