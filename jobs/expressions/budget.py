"""A job's budget of expressions, all of them together: each one is bounded (``limits``), but
5,977 of them once took 8 s to save. Counted before any of them is parsed."""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext as _

from jobs.expressions.vocabulary import EXPRESSION_KEY, is_expression

MAX_EXPRESSIONS = 100  # what a run evaluates
MAX_EXPRESSION_CHARS = 10_000  # what a save parses and checks: ~1 µs a character at worst


def budget_problem(value: Any) -> str | None:
    """Why the expressions in ``value``, at any depth, are more than one job may hold, or None.

    Counted before any of them is parsed, and the count stops at the first one over the budget,
    so kwargs with thousands of expressions are refused in the time it takes to reach it.
    """
    count = chars = 0
    stack = [value]
    while stack:  # not recursive: kwargs from an import can be nested deeper than the stack
        item = stack.pop()
        if is_expression(item):
            count += 1
            chars += len(item[EXPRESSION_KEY])
            if count > MAX_EXPRESSIONS:
                return _('At most %(max)d expressions ({"$expr": …}) per job, at any depth.') % {"max": MAX_EXPRESSIONS}
            if chars > MAX_EXPRESSION_CHARS:
                return _("At most %(max)d characters of expressions per job, all of them together.") % {
                    "max": MAX_EXPRESSION_CHARS
                }
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)
    return None
