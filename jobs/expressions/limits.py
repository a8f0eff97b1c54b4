"""The limits on what an expression makes: every value is plain data, of a bounded size, depth and
magnitude, measured as it is made (``measure``)."""

from __future__ import annotations

from typing import Any

from jobs.expressions.vocabulary import PLAIN_TYPES, ExpressionError, describe

MAX_LENGTH = 1000  # characters of expression text
MAX_NODES = 200  # syntax nodes, not counting operator and context markers
MAX_AST_DEPTH = 50  # keeps the recursive interpreter far from Python's recursion limit
MAX_SIZE = 10_000  # characters plus container slots in any one value
MAX_VALUE_DEPTH = 32  # nesting of lists, tuples and dicts in any one value
MAX_INT = 10**18  # integers must stay strictly below this in absolute value
MAX_INDENT = 8  # json.dumps indent: the output grows with indent * depth * size
MAX_NDIGITS = 30  # round(5, -10**9) computes 10**(10**9) inside CPython

_CONTAINERS = (list, tuple, dict)


def measure(value: Any) -> int:
    """The size of a plain value, refusing anything not plain, too big, too deep or too large an int."""
    size = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        kind = type(item)
        if kind not in PLAIN_TYPES:
            raise ExpressionError(f"{describe(item)} cannot be used as a value")
        if kind is int and abs(item) >= MAX_INT:
            raise ExpressionError(f"integer too large (at most {MAX_INT - 1} in absolute value)")
        if kind is str:
            size += len(item)
        elif kind in _CONTAINERS:
            if depth >= MAX_VALUE_DEPTH:
                raise ExpressionError(f"value nested too deeply (at most {MAX_VALUE_DEPTH} levels)")
            size += len(item)
            if size <= MAX_SIZE:  # else we are about to refuse: don't push millions of items first
                children = [part for pair in item.items() for part in pair] if kind is dict else item
                stack.extend((child, depth + 1) for child in children)
        if size > MAX_SIZE:
            raise ExpressionError(f"value too large (more than {MAX_SIZE} characters or items)")
    return size


def refuse_if_too_large(predicted: int, what: str) -> None:
    """Refuse a call that would make a value of ``predicted`` characters over ``MAX_SIZE``."""
    if predicted > MAX_SIZE:
        raise ExpressionError(f"value too large: {what} would make {predicted} characters, at most {MAX_SIZE}")
