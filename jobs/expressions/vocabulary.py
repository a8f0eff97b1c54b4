"""What an expression may name and use: the names, the attributes of each, the plain types its
values may have, the operators' symbols (for messages), and the error every refusal raises."""

from __future__ import annotations

import ast
import json
from datetime import date, datetime, time, timedelta
from typing import Any

EXPRESSION_KEY = "$expr"


class ExpressionError(ValueError):
    """An expression was refused, or failed while being evaluated."""


# Everything an expression can name. None, True and False are parsed as constants.
NAMES: dict[str, Any] = {
    "datetime": datetime,
    "date": date,
    "time": time,
    "timedelta": timedelta,
    "json": json,
    "len": len,
    "min": min,
    "max": max,
    "abs": abs,
    "round": round,
    "int": int,
    "float": float,
    "str": str,
    "bool": bool,
    "list": list,
    "dict": dict,
    "sorted": sorted,
    "sum": sum,
}

# Attributes of the named classes and module themselves: constructors and constants only.
CLASS_ATTRS: dict[str, frozenset[str]] = {
    "datetime": frozenset({"now", "today", "utcnow", "fromisoformat", "fromtimestamp", "combine", "min", "max"}),
    "date": frozenset({"today", "fromisoformat", "fromtimestamp", "min", "max"}),
    "time": frozenset({"fromisoformat", "min", "max"}),
    "timedelta": frozenset({"min", "max"}),
    "json": frozenset({"dumps", "loads"}),
}

_DATE_PARTS = frozenset({"year", "month", "day", "isoformat", "strftime", "replace", "weekday", "isoweekday"})
_TIME_PARTS = frozenset({"hour", "minute", "second", "microsecond", "isoformat", "strftime", "replace"})

# Attributes of values, by exact type. No method here can build a value much larger than its inputs
# without a guard below (str.center, ljust, zfill, expandtabs, format are left out for that reason).
INSTANCE_ATTRS: dict[type, frozenset[str]] = {
    datetime: _DATE_PARTS
    | _TIME_PARTS
    | CLASS_ATTRS["datetime"]
    | {"date", "time", "timestamp", "astimezone", "toordinal"},
    date: _DATE_PARTS | CLASS_ATTRS["date"] | {"toordinal"},
    time: _TIME_PARTS,
    timedelta: frozenset({"days", "seconds", "microseconds", "total_seconds"}),
    str: frozenset(
        {
            "upper",
            "lower",
            "title",
            "capitalize",
            "strip",
            "lstrip",
            "rstrip",
            "split",
            "rsplit",
            "splitlines",
            "replace",
            "join",
            "startswith",
            "endswith",
            "count",
            "find",
            "isdigit",
            "isalpha",
            "isalnum",
        }
    ),
    list: frozenset({"count", "index"}),
    tuple: frozenset({"count", "index"}),
    dict: frozenset({"get", "keys", "values", "items"}),
}

KNOWN_ATTRS = frozenset().union(*CLASS_ATTRS.values(), *INSTANCE_ATTRS.values())

# Exact types only: a subclass could bring its own __eq__, __str__ or __getattr__.
PLAIN_TYPES = frozenset({type(None), bool, int, float, str, list, tuple, dict, datetime, date, time, timedelta})

OPERATOR_SYMBOLS: dict[type, str] = {
    ast.Add: "+",
    ast.Sub: "-",
    ast.Mult: "*",
    ast.Div: "/",
    ast.FloorDiv: "//",
    ast.Mod: "%",
    ast.Pow: "**",
    ast.MatMult: "@",
    ast.LShift: "<<",
    ast.RShift: ">>",
    ast.BitOr: "|",
    ast.BitAnd: "&",
    ast.BitXor: "^",
    ast.Invert: "~",
    ast.Is: "is",
    ast.IsNot: "is not",
    ast.In: "in",
    ast.NotIn: "not in",
}


def is_expression(value: Any) -> bool:
    """Whether ``value`` is exactly ``{"$expr": "<text>"}``."""
    return isinstance(value, dict) and len(value) == 1 and isinstance(value.get(EXPRESSION_KEY), str)


def describe(obj: Any) -> str:
    """How ``obj`` is named in a message: by its name if it is one of ``NAMES``."""
    for name, named in NAMES.items():
        if obj is named:
            return f"'{name}'"
    if callable(obj):
        return f"method '{getattr(obj, '__name__', '?')}'"
    return f"a {type(obj).__name__} object"
