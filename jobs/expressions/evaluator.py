"""The interpreter: a checked tree (``checks``) evaluated node by node, knowing only the vocabulary's
names, operators and methods. Every value made is measured (``limits``), calls that can grow a
value are guarded first (``guards``), and only plain data comes out."""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable, Iterable
from typing import Any

from django.utils.translation import gettext as _

from jobs.expressions.guards import GUARDS
from jobs.expressions.limits import MAX_SIZE, measure
from jobs.expressions.vocabulary import (
    CLASS_ATTRS,
    INSTANCE_ATTRS,
    NAMES,
    OPERATOR_SYMBOLS,
    PLAIN_TYPES,
    ExpressionError,
    describe,
)

_DICT_VIEWS: tuple[type[Iterable[Any]], ...] = (type({}.keys()), type({}.values()), type({}.items()))


def evaluate_tree(tree: ast.Expression) -> Any:
    """The value of a checked tree; any error while running is an :class:`ExpressionError`."""
    try:
        return _value(tree.body)
    except ExpressionError:
        raise
    except Exception as exc:
        # Operators and calls wrap their own errors; this is the net for the rest (RecursionError…).
        raise ExpressionError(f"{type(exc).__name__}: {exc}") from exc


def _checked(value: Any) -> Any:
    measure(value)
    return value


def _value(node: ast.expr) -> Any:
    """Evaluate ``node`` to plain data; classes, functions and the module can only be called or dotted."""
    value = _eval(node)
    if type(value) not in PLAIN_TYPES:
        raise ExpressionError(
            _("%(what)s can only be called or used with '.', not as a value") % {"what": describe(value)}
        )
    return _checked(value)


def _eval(node: ast.expr) -> Any:
    handler = _HANDLERS.get(type(node))
    if handler is None:  # _check_kind refused these already; this guards against a gap between the two
        raise ExpressionError(_("%(what)s not allowed") % {"what": type(node).__name__})
    return handler(node)


def _eval_constant(node: ast.Constant) -> Any:
    return node.value


def _eval_name(node: ast.Name) -> Any:
    if node.id not in NAMES:
        raise ExpressionError(_("name '%(name)s' not allowed") % {"name": node.id})
    return NAMES[node.id]


def _eval_list(node: ast.List) -> list[Any]:
    return [_value(item) for item in node.elts]


def _eval_tuple(node: ast.Tuple) -> tuple[Any, ...]:
    return tuple(_value(item) for item in node.elts)


def _eval_dict(node: ast.Dict) -> dict[Any, Any]:
    result: dict[Any, Any] = {}
    for key_node, value_node in zip(node.keys, node.values, strict=True):
        if key_node is None:
            raise ExpressionError(_("** unpacking not allowed"))
        key = _value(key_node)
        _attempt("dict literal", operator.setitem, result, key, _value(value_node))
    return result


def _attempt(what: str, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run ``function``, turning whatever it raises into an ExpressionError that says where."""
    try:
        return function(*args, **kwargs)
    except ExpressionError:
        raise
    except Exception as exc:
        raise ExpressionError(f"{what}: {type(exc).__name__}: {exc}") from exc


def _multiply(left: Any, right: Any) -> Any:
    # Predict repetition before doing it: "x" * 10**17 must never be attempted.
    for sequence, count in ((left, right), (right, left)):
        repeats = isinstance(sequence, str | list | tuple) and isinstance(count, int)
        if repeats and measure(sequence) * max(count, 0) > MAX_SIZE:
            raise ExpressionError(
                _("value too large: repetition beyond %(max)d characters or items") % {"max": MAX_SIZE}
            )
    return left * right


def _modulo(left: Any, right: Any) -> Any:
    # "%10000000d" % 1 builds a huge string; printf-style formatting is not needed here.
    if isinstance(left, str):
        raise ExpressionError(_("string formatting with '%' not allowed"))
    return left % right


_BINARY: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: _multiply,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: _modulo,
}

_UNARY: dict[type, Callable[[Any], Any]] = {ast.USub: operator.neg, ast.UAdd: operator.pos, ast.Not: operator.not_}

_COMPARE: dict[type, Callable[[Any, Any], Any]] = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
}


def _operator(table: dict[type, Callable[..., Any]], op: ast.AST) -> Callable[..., Any]:
    function = table.get(type(op))
    if function is None:
        raise ExpressionError(
            _("operator '%(operator)s' not allowed") % {"operator": OPERATOR_SYMBOLS.get(type(op), type(op).__name__)}
        )
    return function


def _eval_binop(node: ast.BinOp) -> Any:
    function = _operator(_BINARY, node.op)
    left, right = _value(node.left), _value(node.right)
    return _attempt(f"operator '{OPERATOR_SYMBOLS[type(node.op)]}'", function, left, right)


def _eval_unaryop(node: ast.UnaryOp) -> Any:
    function = _operator(_UNARY, node.op)
    return _attempt("unary operator", function, _value(node.operand))


def _eval_boolop(node: ast.BoolOp) -> Any:
    # Short-circuits like Python: the right side of `False and …` is never evaluated.
    want_true = isinstance(node.op, ast.Or)
    result = None
    for item in node.values:
        result = _value(item)
        if bool(result) is want_true:
            return result
    return result


def _eval_compare(node: ast.Compare) -> bool:
    left = _value(node.left)
    for op, right_node in zip(node.ops, node.comparators, strict=True):
        right = _value(right_node)
        if not _attempt("comparison", _operator(_COMPARE, op), left, right):
            return False
        left = right
    return True


def _eval_ifexp(node: ast.IfExp) -> Any:
    return _value(node.body) if _value(node.test) else _value(node.orelse)


def _eval_subscript(node: ast.Subscript) -> Any:
    container = _value(node.value)
    if type(container) not in (list, tuple, dict, str):
        raise ExpressionError(_("subscripts on %(type)s values not allowed") % {"type": type(container).__name__})
    if isinstance(node.slice, ast.Slice):
        key: Any = slice(*(_slice_part(part) for part in (node.slice.lower, node.slice.upper, node.slice.step)))
    else:
        key = _value(node.slice)
        if type(key) not in (int, str, bool):
            raise ExpressionError(
                _("subscripts must be integers or strings, not %(type)s") % {"type": type(key).__name__}
            )
    return _attempt("subscript", operator.getitem, container, key)


def _slice_part(node: ast.expr | None) -> int | None:
    part = None if node is None else _value(node)
    if part is not None and not isinstance(part, int):
        raise ExpressionError(_("slice bounds must be integers, not %(type)s") % {"type": type(part).__name__})
    return part


def _owner(obj: Any) -> tuple[str, frozenset[str]]:
    """A label for ``obj`` in messages, and the attributes it allows."""
    for name, allowed in CLASS_ATTRS.items():
        if obj is NAMES[name]:
            return name, allowed
    kind = type(obj)
    if kind in PLAIN_TYPES:
        return f"{kind.__name__} value", INSTANCE_ATTRS.get(kind, frozenset())
    return describe(obj), frozenset()


def _eval_attribute(node: ast.Attribute) -> Any:
    return _get_attribute(_eval(node.value), node.attr)


def _get_attribute(obj: Any, attr: str) -> Any:
    label, allowed = _owner(obj)
    if attr.startswith("_") or attr not in allowed:
        raise ExpressionError(_("attribute '%(name)s' not allowed on %(owner)s") % {"name": attr, "owner": label})
    return getattr(obj, attr)


def _eval_call(node: ast.Call) -> Any:
    if isinstance(node.func, ast.Attribute):
        obj = _eval(node.func.value)  # once: evaluating it again would double the work at every level
        function = _get_attribute(obj, node.func.attr)
        # Classes and the module are their own owners; a value's methods are its type's.
        guard_key: Any = (obj if type(obj) not in PLAIN_TYPES else type(obj), node.func.attr)
        label = f"{_owner(obj)[0]}.{node.func.attr}"
    elif isinstance(node.func, ast.Name):
        obj, function = None, _eval_name(node.func)
        guard_key, label = node.func.id, node.func.id
    else:
        raise ExpressionError(_("only named functions and methods can be called"))
    if not callable(function):
        raise ExpressionError(_("%(what)s cannot be called") % {"what": label})
    args = [_value(arg) for arg in node.args]
    kwargs = {_keyword_name(keyword): _value(keyword.value) for keyword in node.keywords}
    guard = GUARDS.get(guard_key)
    if guard is not None:
        guard(obj, args, kwargs)
    result = _attempt(f"{label}()", function, *args, **kwargs)
    if isinstance(result, _DICT_VIEWS):  # dict.keys() and friends: hand out a list, not a live view
        result = list(result)
    return result


def _keyword_name(keyword: ast.keyword) -> str:
    if keyword.arg is None:
        raise ExpressionError(_("** unpacking not allowed"))
    return keyword.arg


_HANDLERS: dict[type, Callable[[Any], Any]] = {
    ast.Constant: _eval_constant,
    ast.Name: _eval_name,
    ast.List: _eval_list,
    ast.Tuple: _eval_tuple,
    ast.Dict: _eval_dict,
    ast.BinOp: _eval_binop,
    ast.UnaryOp: _eval_unaryop,
    ast.BoolOp: _eval_boolop,
    ast.Compare: _eval_compare,
    ast.IfExp: _eval_ifexp,
    ast.Subscript: _eval_subscript,
    ast.Attribute: _eval_attribute,
    ast.Call: _eval_call,
}
