"""Guards for the calls that can build a value much larger than their inputs, checked before the
call is made: ``str.replace``, ``str.join``, ``json.dumps``/``json.loads`` arguments, ``round``'s
ndigits and ``sum``'s operands."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django.utils.translation import gettext as _

from jobs.expressions.limits import MAX_INDENT, MAX_NDIGITS, refuse_if_too_large
from jobs.expressions.vocabulary import ExpressionError


def _guard_replace(text: str, args: list[Any], kwargs: dict[str, Any]) -> None:
    if len(args) < 2 or not isinstance(args[0], str) or not isinstance(args[1], str):
        return  # the call itself raises TypeError
    old, new = args[0], args[1]
    count = text.count(old) if old else len(text) + 1
    limit = args[2] if len(args) > 2 else kwargs.get("count", -1)
    if isinstance(limit, int) and limit >= 0:
        count = min(count, limit)
    refuse_if_too_large(len(text) + count * (len(new) - len(old)), "replace")


def _guard_join(separator: str, args: list[Any], kwargs: dict[str, Any]) -> None:
    if len(args) != 1 or not isinstance(args[0], str | list | tuple | dict):
        return
    parts = args[0]
    total = sum(len(part) for part in parts if isinstance(part, str))
    refuse_if_too_large(total + len(separator) * max(len(parts) - 1, 0), "join")


def _guard_dumps(_module: Any, args: list[Any], kwargs: dict[str, Any]) -> None:
    # separators, default and cls are left out: each can make the output grow or run other code.
    unknown = sorted(set(kwargs) - {"sort_keys", "ensure_ascii", "indent"})
    if unknown:
        raise ExpressionError(_("json.dumps: argument(s) %(names)s not allowed") % {"names": ", ".join(unknown)})
    indent = kwargs.get("indent")
    if indent is not None and (type(indent) is not int or not 0 <= indent <= MAX_INDENT):
        raise ExpressionError(_("json.dumps: indent must be an integer from 0 to %(max)d") % {"max": MAX_INDENT})


def _guard_loads(_module: Any, args: list[Any], kwargs: dict[str, Any]) -> None:
    if kwargs:
        raise ExpressionError(_("json.loads: argument(s) %(names)s not allowed") % {"names": ", ".join(sorted(kwargs))})


def _guard_round(_none: Any, args: list[Any], kwargs: dict[str, Any]) -> None:
    ndigits = args[1] if len(args) > 1 else kwargs.get("ndigits")
    if isinstance(ndigits, int) and abs(ndigits) > MAX_NDIGITS:
        raise ExpressionError(_("round: ndigits must be from -%(max)d to %(max)d") % {"max": MAX_NDIGITS})


def _guard_sum(_none: Any, args: list[Any], kwargs: dict[str, Any]) -> None:
    # sum() adds left to right, copying the running total each time: over lists or tuples that is
    # quadratic (sum([[]] * 9999, [0] * 9999) copies ~10**8 items), and each step stays under the
    # size limit. Numbers and timedeltas add in constant time, so only they may be summed.
    items = list(args[0]) if args and isinstance(args[0], list | tuple) else []
    start = args[1] if len(args) > 1 else kwargs.get("start", 0)
    for value in [start, *items]:
        if type(value) not in _SUMMABLE:
            raise ExpressionError(
                _("sum: only numbers and timedeltas can be summed, not %(type)s") % {"type": type(value).__name__}
            )


_SUMMABLE = frozenset({int, float, bool, timedelta})

GUARDS: dict[Any, Callable[[Any, list[Any], dict[str, Any]], None]] = {
    (str, "replace"): _guard_replace,
    (str, "join"): _guard_join,
    (json, "dumps"): _guard_dumps,
    (json, "loads"): _guard_loads,
    "round": _guard_round,
    "sum": _guard_sum,
}
