"""The limits on what an expression makes: every value is plain data, of a bounded size, depth and
magnitude, measured as it is made (``measure``)."""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext as _

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
            raise ExpressionError(_("%(what)s cannot be used as a value") % {"what": describe(item)})
        if kind is int and abs(item) >= MAX_INT:
            raise ExpressionError(_("integer too large (at most %(max)d in absolute value)") % {"max": MAX_INT - 1})
        if kind is str:
            size += len(item)
        elif kind in _CONTAINERS:
            if depth >= MAX_VALUE_DEPTH:
                raise ExpressionError(_("value nested too deeply (at most %(max)d levels)") % {"max": MAX_VALUE_DEPTH})
            size += len(item)
            if size <= MAX_SIZE:  # else we are about to refuse: don't push millions of items first
                children = [part for pair in item.items() for part in pair] if kind is dict else item
                stack.extend((child, depth + 1) for child in children)
        if size > MAX_SIZE:
            raise ExpressionError(_("value too large (more than %(max)d characters or items)") % {"max": MAX_SIZE})
    return size


def refuse_if_too_large(predicted: int, what: str) -> None:
    """Refuse a call that would make a value of ``predicted`` characters over ``MAX_SIZE``."""
    if predicted > MAX_SIZE:
        raise ExpressionError(
            _("value too large: %(what)s would make %(n)d characters, at most %(max)d")
            % {"what": what, "n": predicted, "max": MAX_SIZE}
        )
