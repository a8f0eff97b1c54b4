"""Parsing an expression and checking it without running it: ``compile_expression`` refuses a tree
too large or too deep, any construct, name or attribute outside the vocabulary, and literals too
large, before anything is evaluated."""

from __future__ import annotations

import ast
from collections.abc import Callable
from typing import Any

from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop

from jobs.expressions.limits import MAX_AST_DEPTH, MAX_INT, MAX_LENGTH, MAX_NODES, measure
from jobs.expressions.vocabulary import KNOWN_ATTRS, NAMES, OPERATOR_SYMBOLS, PLAIN_TYPES, ExpressionError

# Users' older code wrote datetime.datetime.now() and datetime.timedelta(...) after `import datetime`.
_MODULE_STYLE = frozenset({"datetime", "date", "time", "timedelta"})

_REFUSED_NODES: dict[type, str] = {
    ast.Lambda: "lambda",
    ast.ListComp: gettext_noop("comprehensions"),
    ast.SetComp: gettext_noop("comprehensions"),
    ast.DictComp: gettext_noop("comprehensions"),
    ast.GeneratorExp: gettext_noop("generator expressions"),
    ast.NamedExpr: gettext_noop("assignment expressions (:=)"),
    ast.JoinedStr: "f-strings",
    ast.FormattedValue: "f-strings",
    ast.Starred: gettext_noop("* unpacking"),
    ast.Yield: "yield",
    ast.YieldFrom: "yield",
    ast.Await: "await",
    ast.Set: gettext_noop("set literals"),
}

_ALLOWED_NODES = frozenset(
    {
        ast.Expression,
        ast.Constant,
        ast.Name,
        ast.Load,
        ast.List,
        ast.Tuple,
        ast.Dict,
        ast.BinOp,
        ast.UnaryOp,
        ast.BoolOp,
        ast.Compare,
        ast.IfExp,
        ast.Attribute,
        ast.Call,
        ast.keyword,
        ast.Subscript,
        ast.Slice,
        ast.Add,
        ast.Sub,
        ast.Mult,
        ast.Div,
        ast.FloorDiv,
        ast.Mod,
        ast.USub,
        ast.UAdd,
        ast.Not,
        ast.And,
        ast.Or,
        ast.Eq,
        ast.NotEq,
        ast.Lt,
        ast.LtE,
        ast.Gt,
        ast.GtE,
    }
)

_MARKERS = (ast.expr_context, ast.operator, ast.boolop, ast.unaryop, ast.cmpop)


def compile_expression(text: str) -> ast.Expression:
    """The parsed tree of ``text``, checked; raises :class:`ExpressionError` if refused."""
    if not isinstance(text, str):
        raise ExpressionError(_("an expression must be a string, not %(type)s") % {"type": type(text).__name__})
    if len(text) > MAX_LENGTH:
        raise ExpressionError(
            _("expression too long: %(n)d characters, at most %(max)d") % {"n": len(text), "max": MAX_LENGTH}
        )
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError as exc:
        raise ExpressionError(_("invalid syntax: %(error)s") % {"error": exc.msg}) from exc
    except (ValueError, RecursionError, MemoryError) as exc:
        # Null bytes, or nesting the parser itself cannot take.
        raise ExpressionError(_("invalid expression: %(error)s") % {"error": exc}) from exc
    nodes = _checked_nodes(tree)
    # Kinds first, so `lambda x: x` is refused as a lambda rather than for its unknown name `x`;
    # then names, so `os.system()` is refused for `os` rather than for `system`.
    for node in nodes:
        _check_kind(node)
    for node in nodes:
        if isinstance(node, ast.Name):
            _check_name(node)
    for node in nodes:
        check = _STATIC_CHECKS.get(type(node))
        if check is not None:
            check(node)
    return tree


def _checked_nodes(tree: ast.Expression) -> list[ast.AST]:
    """Every node of ``tree`` in reading order, refusing a tree too large or too deep, with
    ``datetime.datetime`` rewritten to ``datetime`` (``datetime.timedelta`` to ``timedelta``, …).

    One pass over the tree, without recursion (a deep tree is refused, not a stack overflow) and
    without ``ast.walk`` or a ``NodeTransformer``: this is most of what saving a job with 100
    expressions costs, and it stays a small part of it this way.
    """
    nodes: list[ast.AST] = []
    # The slots that hold a candidate for the rewrite: (parent, field, index in a list or -1, node).
    rewrites: list[tuple[ast.AST, str, int, ast.Attribute]] = []
    count = 0
    stack: list[tuple[ast.AST, int]] = [(tree, 0)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_AST_DEPTH:
            raise ExpressionError(_("expression nested too deeply (at most %(max)d levels)") % {"max": MAX_AST_DEPTH})
        if not isinstance(node, _MARKERS):
            count += 1
            if count > MAX_NODES:
                raise ExpressionError(_("expression too complex: more than %(max)d parts") % {"max": MAX_NODES})
        nodes.append(node)
        children: list[ast.AST] = []
        for field in _child_fields(type(node)):
            value = getattr(node, field, None)
            if isinstance(value, ast.AST):
                children.append(value)
                if type(value) is ast.Attribute and value.attr in _MODULE_STYLE:
                    rewrites.append((node, field, -1, value))
            elif isinstance(value, list):
                for index, item in enumerate(value):
                    if isinstance(item, ast.AST):
                        children.append(item)
                        if type(item) is ast.Attribute and item.attr in _MODULE_STYLE:
                            rewrites.append((node, field, index, item))
        depth += 1
        stack.extend([(child, depth) for child in reversed(children)])
    return _module_style(nodes, rewrites) if rewrites else nodes


# Fields that never hold a node to check: names, literal values, and the expression context
# (always Load in an expression; Store only appears under a construct refused for itself).
_LEAF_FIELDS = frozenset(
    {(ast.Constant, "value"), (ast.Constant, "kind"), (ast.Name, "id"), (ast.Attribute, "attr"), (ast.keyword, "arg")}
)
_CHILD_FIELDS: dict[type[ast.AST], tuple[str, ...]] = {}


def _child_fields(kind: type[ast.AST]) -> tuple[str, ...]:
    fields = _CHILD_FIELDS.get(kind)
    if fields is None:
        fields = tuple(f for f in kind._fields if f != "ctx" and (kind, f) not in _LEAF_FIELDS)
        _CHILD_FIELDS[kind] = fields
    return fields


def _module_style(nodes: list[ast.AST], rewrites: list[tuple[ast.AST, str, int, ast.Attribute]]) -> list[ast.AST]:
    """Rewrite ``datetime.<name>`` to ``<name>`` in place, innermost first (the slots were found
    parents first), so ``datetime.datetime.date`` is ``datetime.date`` and then ``date``, as
    users' code written after ``import datetime`` means. Returns the nodes of the new tree."""
    gone: set[int] = set()
    added: list[ast.AST] = []
    for parent, field, index, node in reversed(rewrites):
        if not (type(node.value) is ast.Name and node.value.id == "datetime"):
            continue
        name = ast.copy_location(ast.Name(id=node.attr, ctx=ast.Load()), node)
        if index < 0:
            setattr(parent, field, name)
        else:
            getattr(parent, field)[index] = name
        gone.update((id(node), id(node.value)))
        added.append(name)
    return [node for node in (*nodes, *added) if id(node) not in gone]


def _check_kind(node: ast.AST) -> None:
    kind = type(node)
    if kind in _REFUSED_NODES:
        raise ExpressionError(_("%(what)s not allowed") % {"what": _(_REFUSED_NODES[kind])})
    if kind in OPERATOR_SYMBOLS and kind not in _ALLOWED_NODES:
        raise ExpressionError(_("operator '%(operator)s' not allowed") % {"operator": OPERATOR_SYMBOLS[kind]})
    if kind not in _ALLOWED_NODES:
        raise ExpressionError(_("%(what)s not allowed") % {"what": kind.__name__})


def _check_name(node: ast.Name) -> None:
    if node.id not in NAMES:
        raise ExpressionError(
            _("name '%(name)s' not allowed; allowed names: %(names)s") % {"name": node.id, "names": ", ".join(NAMES)}
        )


def _check_attribute(node: ast.Attribute) -> None:
    if node.attr.startswith("_"):
        raise ExpressionError(_("private or dunder attribute '%(name)s' not allowed") % {"name": node.attr})
    if node.attr not in KNOWN_ATTRS:
        raise ExpressionError(_("attribute '%(name)s' not allowed") % {"name": node.attr})


def _check_constant(node: ast.Constant) -> None:
    value = node.value
    kind = type(value)
    if kind not in PLAIN_TYPES:
        raise ExpressionError(_("%(type)s literals not allowed") % {"type": kind.__name__})
    if kind in (bool, float, type(None)) or (type(value) is int and abs(value) < MAX_INT):
        return  # most literals: nothing to measure
    measure(value)  # a 1000-digit literal is refused at save time, not only when run


def _check_call(node: ast.Call) -> None:
    # Calling whatever a call returned, or an item of a list, would need callables as values.
    if not isinstance(node.func, ast.Name | ast.Attribute):
        raise ExpressionError(_("only named functions and methods can be called"))
    if any(keyword.arg is None for keyword in node.keywords):
        raise ExpressionError(_("** unpacking not allowed"))


def _check_dict(node: ast.Dict) -> None:
    if any(key is None for key in node.keys):
        raise ExpressionError(_("** unpacking not allowed"))


_STATIC_CHECKS: dict[type, Callable[[Any], None]] = {
    ast.Attribute: _check_attribute,
    ast.Constant: _check_constant,
    ast.Call: _check_call,
    ast.Dict: _check_dict,
}
