from __future__ import annotations

from jobs.handlers import handler


@handler
def add(a: int, b: int = 0) -> int:
    return a + b


def _private() -> None:
    pass


def not_marked(a: int = 0) -> int:
    """A function of an allowed package that is not declared a handler: no job may run it."""
    return a
