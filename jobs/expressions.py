"""Restricted expressions in handler kwargs: ``{"$expr": "date.today() - timedelta(days=1)"}``.

A job's kwargs often need a value known only when it runs ("yesterday", "midnight today").
The text comes from users, so it is never given to ``eval``, ``exec`` or ``compile`` to code:
any of them would hand out the whole interpreter (``().__class__.__bases__[0].__subclasses__()``
reaches ``os`` without a single forbidden name). Instead the text is parsed with
``ast.parse(mode="eval")`` and this module interprets the tree itself, node by node, knowing only
a few names, operators and methods; everything else is refused with an :class:`ExpressionError`.

Resource limits keep any input from hanging or exhausting memory: the text, the tree and every
value made along the way are bounded, ``**`` is refused, and the calls that can build large
values (``str.replace``, ``str.join``, ``json.dumps(indent=…)``, ``round(ndigits=…)``) are
checked before they run. Only plain data comes out: never a class, function or module.
"""

from __future__ import annotations

import ast
import json
import operator
from collections.abc import Callable
from datetime import date, datetime, time, timedelta
from typing import Any

MAX_LENGTH = 1000  # characters of expression text
MAX_NODES = 200  # syntax nodes, not counting operator and context markers
MAX_AST_DEPTH = 50  # keeps the recursive interpreter far from Python's recursion limit
MAX_SIZE = 10_000  # characters plus container slots in any one value
MAX_VALUE_DEPTH = 32  # nesting of lists, tuples and dicts in any one value
MAX_INT = 10**18  # integers must stay strictly below this in absolute value
MAX_INDENT = 8  # json.dumps indent: the output grows with indent * depth * size
MAX_NDIGITS = 30  # round(5, -10**9) computes 10**(10**9) inside CPython
# Per job, all expressions together: each one is bounded, but 5,977 of them took 8 s to save.
MAX_EXPRESSIONS = 100  # what a run evaluates
MAX_EXPRESSION_CHARS = 10_000  # what a save parses and checks: ~1 µs a character at worst

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

_KNOWN_ATTRS = frozenset().union(*CLASS_ATTRS.values(), *INSTANCE_ATTRS.values())

# Exact types only: a subclass could bring its own __eq__, __str__ or __getattr__.
PLAIN_TYPES = frozenset({type(None), bool, int, float, str, list, tuple, dict, datetime, date, time, timedelta})
_CONTAINERS = (list, tuple, dict)
_DICT_VIEWS = (type({}.keys()), type({}.values()), type({}.items()))

# Users' older code wrote datetime.datetime.now() and datetime.timedelta(...) after `import datetime`.
_MODULE_STYLE = frozenset({"datetime", "date", "time", "timedelta"})

_OPERATOR_SYMBOLS: dict[type, str] = {
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

_REFUSED_NODES: dict[type, str] = {
    ast.Lambda: "lambda",
    ast.ListComp: "comprehensions",
    ast.SetComp: "comprehensions",
    ast.DictComp: "comprehensions",
    ast.GeneratorExp: "generator expressions",
    ast.NamedExpr: "assignment expressions (:=)",
    ast.JoinedStr: "f-strings",
    ast.FormattedValue: "f-strings",
    ast.Starred: "* unpacking",
    ast.Yield: "yield",
    ast.YieldFrom: "yield",
    ast.Await: "await",
    ast.Set: "set literals",
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


# ---------------------------------------------------------------- public API


def is_expression(value: Any) -> bool:
    """Whether ``value`` is exactly ``{"$expr": "<text>"}``."""
    return isinstance(value, dict) and len(value) == 1 and isinstance(value.get(EXPRESSION_KEY), str)


def validate_expression(text: str) -> None:
    """Parse and check ``text`` without running it; raises :class:`ExpressionError` if refused."""
    _compile(text)


def evaluate(text: str) -> Any:
    """Evaluate ``text``; anything refused, and any error while running, is an :class:`ExpressionError`."""
    tree = _compile(text)
    try:
        return _value(tree.body)
    except ExpressionError:
        raise
    except Exception as exc:
        # Operators and calls wrap their own errors; this is the net for the rest (RecursionError…).
        raise ExpressionError(f"{type(exc).__name__}: {exc}") from exc


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
                return f'At most {MAX_EXPRESSIONS} expressions ({{"$expr": …}}) per job, at any depth.'
            if chars > MAX_EXPRESSION_CHARS:
                return f"At most {MAX_EXPRESSION_CHARS} characters of expressions per job, all of them together."
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)
    return None


def resolve_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``kwargs`` with every ``{"$expr": …}``, at any depth, replaced by its value.

    More than a job's budget of expressions is refused before any runs: saving refuses them too,
    but kwargs saved before that rule, or written to the database directly, must not cost a worker
    minutes.
    """
    problem = budget_problem(kwargs)
    if problem is not None:
        raise ExpressionError(problem)
    return {key: _resolve(value, key) for key, value in kwargs.items()}


def _resolve(value: Any, path: str) -> Any:
    if is_expression(value):
        try:
            return evaluate(value[EXPRESSION_KEY])
        except ExpressionError as exc:
            # The same text may sit under several keys: say which one failed.
            raise ExpressionError(f"{path}: {exc}") from exc
    if isinstance(value, dict):
        return {key: _resolve(item, f"{path}.{key}") for key, item in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_resolve(item, f"{path}[{index}]") for index, item in enumerate(value))
    return value


# ---------------------------------------------------------------- parsing and static checks


def _compile(text: str) -> ast.Expression:
    if not isinstance(text, str):
        raise ExpressionError(f"an expression must be a string, not {type(text).__name__}")
    if len(text) > MAX_LENGTH:
        raise ExpressionError(f"expression too long: {len(text)} characters, at most {MAX_LENGTH}")
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError as exc:
        raise ExpressionError(f"invalid syntax: {exc.msg}") from exc
    except (ValueError, RecursionError, MemoryError) as exc:
        # Null bytes, or nesting the parser itself cannot take.
        raise ExpressionError(f"invalid expression: {exc}") from exc
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
            raise ExpressionError(f"expression nested too deeply (at most {MAX_AST_DEPTH} levels)")
        if not isinstance(node, _MARKERS):
            count += 1
            if count > MAX_NODES:
                raise ExpressionError(f"expression too complex: more than {MAX_NODES} parts")
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
_CHILD_FIELDS: dict[type, tuple[str, ...]] = {}


def _child_fields(kind: type) -> tuple[str, ...]:
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
        raise ExpressionError(f"{_REFUSED_NODES[kind]} not allowed")
    if kind in _OPERATOR_SYMBOLS and kind not in _ALLOWED_NODES:
        raise ExpressionError(f"operator '{_OPERATOR_SYMBOLS[kind]}' not allowed")
    if kind not in _ALLOWED_NODES:
        raise ExpressionError(f"{kind.__name__} not allowed")


def _check_name(node: ast.Name) -> None:
    if node.id not in NAMES:
        raise ExpressionError(f"name '{node.id}' not allowed; allowed names: {', '.join(NAMES)}")


def _check_attribute(node: ast.Attribute) -> None:
    if node.attr.startswith("_"):
        raise ExpressionError(f"private or dunder attribute '{node.attr}' not allowed")
    if node.attr not in _KNOWN_ATTRS:
        raise ExpressionError(f"attribute '{node.attr}' not allowed")


def _check_constant(node: ast.Constant) -> None:
    value = node.value
    kind = type(value)
    if kind not in PLAIN_TYPES:
        raise ExpressionError(f"{kind.__name__} literals not allowed")
    if kind in (bool, float, type(None)) or (kind is int and abs(value) < MAX_INT):
        return  # most literals: nothing to measure
    _measure(value)  # a 1000-digit literal is refused at save time, not only when run


def _check_call(node: ast.Call) -> None:
    # Calling whatever a call returned, or an item of a list, would need callables as values.
    if not isinstance(node.func, ast.Name | ast.Attribute):
        raise ExpressionError("only named functions and methods can be called")
    if any(keyword.arg is None for keyword in node.keywords):
        raise ExpressionError("** unpacking not allowed")


def _check_dict(node: ast.Dict) -> None:
    if any(key is None for key in node.keys):
        raise ExpressionError("** unpacking not allowed")


_STATIC_CHECKS: dict[type, Callable[[Any], None]] = {
    ast.Attribute: _check_attribute,
    ast.Constant: _check_constant,
    ast.Call: _check_call,
    ast.Dict: _check_dict,
}


# ---------------------------------------------------------------- values and their limits


def _measure(value: Any) -> int:
    """The size of a plain value, refusing anything not plain, too big, too deep or too large an int."""
    size = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        kind = type(item)
        if kind not in PLAIN_TYPES:
            raise ExpressionError(f"{_describe(item)} cannot be used as a value")
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


def _checked(value: Any) -> Any:
    _measure(value)
    return value


def _describe(obj: Any) -> str:
    for name, named in NAMES.items():
        if obj is named:
            return f"'{name}'"
    if callable(obj):
        return f"method '{getattr(obj, '__name__', '?')}'"
    return f"a {type(obj).__name__} object"


# ---------------------------------------------------------------- the interpreter


def _value(node: ast.expr) -> Any:
    """Evaluate ``node`` to plain data; classes, functions and the module can only be called or dotted."""
    value = _eval(node)
    if type(value) not in PLAIN_TYPES:
        raise ExpressionError(f"{_describe(value)} can only be called or used with '.', not as a value")
    return _checked(value)


def _eval(node: ast.expr) -> Any:
    handler = _HANDLERS.get(type(node))
    if handler is None:  # _check_kind refused these already; this guards against a gap between the two
        raise ExpressionError(f"{type(node).__name__} not allowed")
    return handler(node)


def _eval_constant(node: ast.Constant) -> Any:
    return node.value


def _eval_name(node: ast.Name) -> Any:
    if node.id not in NAMES:
        raise ExpressionError(f"name '{node.id}' not allowed")
    return NAMES[node.id]


def _eval_list(node: ast.List) -> list[Any]:
    return [_value(item) for item in node.elts]


def _eval_tuple(node: ast.Tuple) -> tuple[Any, ...]:
    return tuple(_value(item) for item in node.elts)


def _eval_dict(node: ast.Dict) -> dict[Any, Any]:
    result = {}
    for key_node, value_node in zip(node.keys, node.values, strict=True):
        if key_node is None:
            raise ExpressionError("** unpacking not allowed")
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
        if repeats and _measure(sequence) * max(count, 0) > MAX_SIZE:
            raise ExpressionError(f"value too large: repetition beyond {MAX_SIZE} characters or items")
    return left * right


def _modulo(left: Any, right: Any) -> Any:
    # "%10000000d" % 1 builds a huge string; printf-style formatting is not needed here.
    if isinstance(left, str):
        raise ExpressionError("string formatting with '%' not allowed")
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
        raise ExpressionError(f"operator '{_OPERATOR_SYMBOLS.get(type(op), type(op).__name__)}' not allowed")
    return function


def _eval_binop(node: ast.BinOp) -> Any:
    function = _operator(_BINARY, node.op)
    left, right = _value(node.left), _value(node.right)
    return _attempt(f"operator '{_OPERATOR_SYMBOLS[type(node.op)]}'", function, left, right)


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
        raise ExpressionError(f"subscripts on {type(container).__name__} values not allowed")
    if isinstance(node.slice, ast.Slice):
        key: Any = slice(*(_slice_part(part) for part in (node.slice.lower, node.slice.upper, node.slice.step)))
    else:
        key = _value(node.slice)
        if type(key) not in (int, str, bool):
            raise ExpressionError(f"subscripts must be integers or strings, not {type(key).__name__}")
    return _attempt("subscript", operator.getitem, container, key)


def _slice_part(node: ast.expr | None) -> int | None:
    part = None if node is None else _value(node)
    if part is not None and not isinstance(part, int):
        raise ExpressionError(f"slice bounds must be integers, not {type(part).__name__}")
    return part


def _owner(obj: Any) -> tuple[str, frozenset[str]]:
    """A label for ``obj`` in messages, and the attributes it allows."""
    for name, allowed in CLASS_ATTRS.items():
        if obj is NAMES[name]:
            return name, allowed
    kind = type(obj)
    if kind in PLAIN_TYPES:
        return f"{kind.__name__} value", INSTANCE_ATTRS.get(kind, frozenset())
    return _describe(obj), frozenset()


def _eval_attribute(node: ast.Attribute) -> Any:
    return _get_attribute(_eval(node.value), node.attr)


def _get_attribute(obj: Any, attr: str) -> Any:
    label, allowed = _owner(obj)
    if attr.startswith("_") or attr not in allowed:
        raise ExpressionError(f"attribute '{attr}' not allowed on {label}")
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
        raise ExpressionError("only named functions and methods can be called")
    if not callable(function):
        raise ExpressionError(f"{label} cannot be called")
    args = [_value(arg) for arg in node.args]
    kwargs = {_keyword_name(keyword): _value(keyword.value) for keyword in node.keywords}
    guard = _GUARDS.get(guard_key)
    if guard is not None:
        guard(obj, args, kwargs)
    result = _attempt(f"{label}()", function, *args, **kwargs)
    if isinstance(result, _DICT_VIEWS):  # dict.keys() and friends: hand out a list, not a live view
        result = list(result)
    return result


def _keyword_name(keyword: ast.keyword) -> str:
    if keyword.arg is None:
        raise ExpressionError("** unpacking not allowed")
    return keyword.arg


# ---------------------------------------------------------------- guards for calls that can grow values


def _refuse_if_too_large(predicted: int, what: str) -> None:
    if predicted > MAX_SIZE:
        raise ExpressionError(f"value too large: {what} would make {predicted} characters, at most {MAX_SIZE}")


def _guard_replace(text: str, args: list[Any], kwargs: dict[str, Any]) -> None:
    if len(args) < 2 or not isinstance(args[0], str) or not isinstance(args[1], str):
        return  # the call itself raises TypeError
    old, new = args[0], args[1]
    count = text.count(old) if old else len(text) + 1
    limit = args[2] if len(args) > 2 else kwargs.get("count", -1)
    if isinstance(limit, int) and limit >= 0:
        count = min(count, limit)
    _refuse_if_too_large(len(text) + count * (len(new) - len(old)), "replace")


def _guard_join(separator: str, args: list[Any], kwargs: dict[str, Any]) -> None:
    if len(args) != 1 or not isinstance(args[0], str | list | tuple | dict):
        return
    parts = args[0]
    total = sum(len(part) for part in parts if isinstance(part, str))
    _refuse_if_too_large(total + len(separator) * max(len(parts) - 1, 0), "join")


def _guard_dumps(_module: Any, args: list[Any], kwargs: dict[str, Any]) -> None:
    # separators, default and cls are left out: each can make the output grow or run other code.
    unknown = sorted(set(kwargs) - {"sort_keys", "ensure_ascii", "indent"})
    if unknown:
        raise ExpressionError(f"json.dumps: argument(s) {', '.join(unknown)} not allowed")
    indent = kwargs.get("indent")
    if indent is not None and (type(indent) is not int or not 0 <= indent <= MAX_INDENT):
        raise ExpressionError(f"json.dumps: indent must be an integer from 0 to {MAX_INDENT}")


def _guard_loads(_module: Any, args: list[Any], kwargs: dict[str, Any]) -> None:
    if kwargs:
        raise ExpressionError(f"json.loads: argument(s) {', '.join(sorted(kwargs))} not allowed")


def _guard_round(_none: Any, args: list[Any], kwargs: dict[str, Any]) -> None:
    ndigits = args[1] if len(args) > 1 else kwargs.get("ndigits")
    if isinstance(ndigits, int) and abs(ndigits) > MAX_NDIGITS:
        raise ExpressionError(f"round: ndigits must be from -{MAX_NDIGITS} to {MAX_NDIGITS}")


def _guard_sum(_none: Any, args: list[Any], kwargs: dict[str, Any]) -> None:
    # sum() adds left to right, copying the running total each time: over lists or tuples that is
    # quadratic (sum([[]] * 9999, [0] * 9999) copies ~10**8 items), and each step stays under the
    # size limit. Numbers and timedeltas add in constant time, so only they may be summed.
    items = list(args[0]) if args and isinstance(args[0], list | tuple) else []
    start = args[1] if len(args) > 1 else kwargs.get("start", 0)
    for value in [start, *items]:
        if type(value) not in _SUMMABLE:
            raise ExpressionError(f"sum: only numbers and timedeltas can be summed, not {type(value).__name__}")


_SUMMABLE = frozenset({int, float, bool, timedelta})

_GUARDS: dict[Any, Callable[[Any, list[Any], dict[str, Any]], None]] = {
    (str, "replace"): _guard_replace,
    (str, "join"): _guard_join,
    (json, "dumps"): _guard_dumps,
    (json, "loads"): _guard_loads,
    "round": _guard_round,
    "sum": _guard_sum,
}

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
