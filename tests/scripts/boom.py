from __future__ import annotations


def run() -> None:
    raise ValueError("the handler failed on purpose")
