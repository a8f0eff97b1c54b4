"""The restricted ``{"$expr": …}`` evaluator: what it accepts, what it refuses, and fuzzing for escapes."""

from __future__ import annotations

import ast
import builtins
import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import pytest
import time_machine
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jobs.expressions import ExpressionError, evaluate, is_expression, resolve_kwargs, validate_expression

# Fuzzed text that the parser finds odd ("1if") warns while being refused; that is expected.
pytestmark = pytest.mark.filterwarnings("ignore::SyntaxWarning", "ignore:invalid escape sequence:DeprecationWarning")

FROZEN = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
freeze = time_machine.travel(FROZEN, tick=False)


def local_now() -> datetime:
    # datetime.now() is naive local time: compute it the same way, whatever TZ the run has.
    return datetime.fromtimestamp(FROZEN.timestamp())


def today() -> date:
    return local_now().date()


ACCEPTED: list[tuple[str, Any]] = [
    # Expected values that are callables are computed inside the frozen test.
    ("datetime.now()", local_now),
    ("datetime(2024, 1, 1)", datetime(2024, 1, 1)),
    ("datetime.combine(date.today(), time.min)", lambda: datetime.combine(today(), time.min)),
    (
        "datetime.combine(date.today() + timedelta(days=1), time.min)",
        lambda: datetime.combine(today() + timedelta(days=1), time.min),
    ),
    ("date.today()", today),
    ("date.today() + timedelta(days=7)", lambda: today() + timedelta(days=7)),
    ("date.today() - timedelta(days=30)", lambda: today() - timedelta(days=30)),
    ("time.min", time.min),
    ("time.max", time.max),
    ("time(8, 30, 0)", time(8, 30)),
    ("timedelta(hours=6)", timedelta(hours=6)),
    ("datetime.datetime.now()", local_now),
    ("datetime.timedelta(days=7)", timedelta(days=7)),
    ("datetime.date.today()", today),
    ("datetime.time(8, 30)", time(8, 30)),
    ("1 + 2", 3),
    ("len([1, 2, 3])", 3),
    ('json.dumps({"a": 1})', '{"a": 1}'),
    ('json.loads("[1, 2]")', [1, 2]),
    ('{"name": "test", "count": 10}', {"name": "test", "count": 10}),
    ("None", None),
    ("True", True),
    ('"hello"', "hello"),
    ("(date.today() - timedelta(days=1)).isoformat()", lambda: (today() - timedelta(days=1)).isoformat()),
    ('datetime.now().strftime("%Y-%m-%d")', lambda: local_now().strftime("%Y-%m-%d")),
    ("datetime.now().replace(hour=0, minute=0, second=0, microsecond=0)", lambda: datetime.combine(today(), time.min)),
    ("datetime.now().date()", today),
    ("date.today().isoformat()[:7]", lambda: today().isoformat()[:7]),
    ("date.today().year", lambda: today().year),
    ('date.fromisoformat("2024-02-29")', date(2024, 2, 29)),
    ("(datetime(2024, 1, 2) - datetime(2024, 1, 1)).total_seconds()", 86400.0),
    ('"a,b".split(",")', ["a", "b"]),
    ('", ".join(["a", "b"])', "a, b"),
    ('"Hello".upper()', "HELLO"),
    ('json.dumps({"b": 1, "a": 2}, sort_keys=True)', '{"a": 2, "b": 1}'),
    ("[1, 2, 3][0]", 1),
    ('{"a": 1}["a"]', 1),
    ('{"a": 1}.get("b", 5)', 5),
    ('sorted({"b": 1, "a": 2}.items())', [("a", 2), ("b", 1)]),
    ('list({"a": 1}.keys())', ["a"]),
    ('"abc"[1:]', "bc"),
    ("(1, 2)", (1, 2)),
    ("1 if False else 2", 2),
    ("not 0", True),
    ('0 or "x"', "x"),
    ("1 and 0", 0),
    ("1 < 2 < 3", True),
    ("1 < 3 < 2", False),
    ("-5 // 2", -3),
    ("7 % 3", 1),
    ("10 / 4", 2.5),
    ("abs(-3) + round(2.567, 2)", 5.57),
    ("min(3, 1, 2) + max([1, 5]) + sum([1, 2, 3])", 12),
    ("sum([1.5, True], 1)", 3.5),
    ("sum([timedelta(hours=1), timedelta(minutes=30)], timedelta(0))", timedelta(hours=1, minutes=30)),
    ('int("42") + float("1.5")', 43.5),
    ("str(12) + str(bool(0))", "12False"),
    ('list("ab")', ["a", "b"]),
    ("dict(a=1)", {"a": 1}),
    ('"x" * 10000', "x" * 10000),
    ("[0] * 10000", [0] * 10000),
    ("999999999999999999", 999_999_999_999_999_999),
]


@pytest.mark.parametrize(("text", "expected"), ACCEPTED, ids=[text for text, _ in ACCEPTED])
@freeze
def test_it_evaluates_allowed_expressions(text: str, expected: Any):
    if callable(expected):
        expected = expected()
    result = evaluate(text)
    assert result == expected
    assert type(result) is type(expected)
    validate_expression(text)  # what runs must also be accepted when the job is saved


# Refused before anything runs: validate_expression says so when the job is saved.
REFUSED_STATICALLY: list[tuple[str, str]] = [
    ('__import__("os")', "name '__import__' not allowed"),
    ("().__class__.__bases__[0].__subclasses__()", "dunder attribute '__"),
    ('open("/etc/passwd")', "name 'open' not allowed"),
    ('os.system("id")', "name 'os' not allowed"),
    ('eval("1")', "name 'eval' not allowed"),
    ('exec("x=1")', "name 'exec' not allowed"),
    ('getattr(date, "today")', "name 'getattr' not allowed"),
    ("lambda: 1", "lambda not allowed"),
    ("[x for x in range(3)]", "comprehensions not allowed"),
    ("(x := 1)", "assignment expressions (:=) not allowed"),
    ("date.__class__", "dunder attribute '__class__'"),
    ("datetime.now()._private", "attribute '_private'"),
    ('"a" * 10**9', "operator '**' not allowed"),
    ("2 ** 10000", "operator '**' not allowed"),
    ("[1] * 10**8", "operator '**' not allowed"),
    ("json.JSONDecoder", "attribute 'JSONDecoder' not allowed"),
    ('f"{1}"', "f-strings not allowed"),
    ("1" * 5000, "expression too long: 5000 characters"),
    ("type(1)", "name 'type' not allowed"),
    ("globals()", "name 'globals' not allowed"),
    ("datetime.now().__reduce__()", "dunder attribute '__reduce__'"),
    ('b"x"', "bytes literals not allowed"),
    ("1j", "complex literals not allowed"),
    ("...", "ellipsis literals not allowed"),
    ("{1, 2}", "set literals not allowed"),
    ("(a for a in [])", "generator expressions not allowed"),
    ("datetime.now()()", "only named functions and methods can be called"),
    ("len(*[1])", "* unpacking not allowed"),
    ('dict(**{"a": 1})', "** unpacking not allowed"),
    ('{**{"a": 1}}', "** unpacking not allowed"),
    ("1 is 1", "operator 'is' not allowed"),
    ("1 in [1]", "operator 'in' not allowed"),
    ("1 << 70", "operator '<<' not allowed"),
    ("x", "name 'x' not allowed"),
    ("datetime.now().tzinfo", "attribute 'tzinfo' not allowed"),
    ("(1).bit_length()", "attribute 'bit_length' not allowed"),
    ('{"a": 1}.keys().isdisjoint([])', "attribute 'isdisjoint' not allowed"),
    ("9999999999999999999", "integer too large"),
    ("1 + " * 250 + "1", "expression too long: 1001 characters, at most 1000"),
    ("", "invalid syntax"),
    ("1 +", "invalid syntax"),
    ("x = 1", "invalid syntax"),
    ("import os", "invalid syntax"),
    ("\x00", "null bytes"),
    ("[" + "1, " * 250 + "1]", "too complex"),
    ("[" * 60 + "]" * 60, "nested too deeply"),
    ("-" * 300 + "1", "nested too deeply"),
]

# Accepted when saved, refused when run: the limit depends on values.
REFUSED_AT_RUN_TIME: list[tuple[str, str]] = [
    ('"x" * 100000', "value too large"),
    ("[1] * 100000000", "value too large"),
    ("[[1] * 5000] * 3", "value too large"),
    ("10000000000 * 10000000000", "integer too large"),
    ('json.loads("1" * 4000)', "integer too large"),
    ("int(1e300)", "integer too large"),
    ('json.loads("[" * 40 + "]" * 40)', "value nested too deeply"),
    ("datetime", "'datetime' can only be called"),
    ("json", "'json' can only be called"),
    ("[len][0]", "'len' can only be called"),
    ("datetime.now", "method 'now' can only be called"),
    ("str(json)", "'json' can only be called"),
    ('str.upper("a")', "attribute 'upper' not allowed on 'str'"),
    ("date.today().hour", "attribute 'hour' not allowed on date value"),
    ('"a".year', "attribute 'year' not allowed on str value"),
    ("(1).year", "attribute 'year' not allowed on int value"),
    ("time.min()", "time.min cannot be called"),
    ("json()", "json cannot be called"),
    ("date.today()[0]", "subscripts on date values not allowed"),
    ('"%s" % 1', "string formatting with '%' not allowed"),
    ('"%0100000000d" % 1', "string formatting with '%' not allowed"),
    ("round(5, -1000000)", "ndigits must be from -30 to 30"),
    ("json.dumps([1], indent=100000000)", "indent must be an integer from 0 to 8"),
    ('json.dumps([1], separators=(",", ":" * 5000))', "separators not allowed"),
    ('json.loads("1", parse_int=1)', "parse_int not allowed"),
    ('("a" * 10000).replace("a", "bb")', "replace would make 20000 characters"),
    ('"a".replace("", "x" * 9999)', "replace would make"),
    ('("," * 10000).join("a" * 10000)', "join would make"),
    # sum() copies its running total at each step: over lists that is quadratic (~0.5 s each)
    ("sum([[]] * 9999, [0] * 9999)", "sum: only numbers and timedeltas can be summed, not list"),
    ("sum([[1], [2]], [])", "sum: only numbers and timedeltas can be summed, not list"),
    ("sum([(1,), (2,)], start=())", "sum: only numbers and timedeltas can be summed, not tuple"),
    ('sum(["a"], "")', "sum: only numbers and timedeltas can be summed, not str"),
]


@pytest.mark.parametrize(("text", "message"), REFUSED_STATICALLY + REFUSED_AT_RUN_TIME)
def test_it_refuses_with_a_message_naming_what(text: str, message: str):
    with pytest.raises(ExpressionError) as refused:
        evaluate(text)
    assert message in str(refused.value)
    assert isinstance(refused.value, ValueError)


@pytest.mark.parametrize(("text", "message"), REFUSED_STATICALLY)
def test_it_refuses_when_validating_without_running(text: str, message: str):
    with pytest.raises(ExpressionError) as refused:
        validate_expression(text)
    assert message in str(refused.value)


@pytest.mark.parametrize(("text", "_message"), REFUSED_AT_RUN_TIME)
def test_it_leaves_value_dependent_limits_to_run_time(text: str, _message: str):
    validate_expression(text)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("1 / 0", "ZeroDivisionError"),
        ('int("x")', "ValueError: invalid literal"),
        ('1 + "a"', "TypeError"),
        ('"a" < 1', "TypeError"),
        ("timedelta(days=1000000000)", "OverflowError"),
        ("datetime.max + timedelta(days=1)", "OverflowError"),
        ('{"a": 1}["b"]', "KeyError"),
        ("[][0]", "IndexError"),
        ('json.loads("{")', "JSONDecodeError"),
        ('date.fromisoformat("yesterday")', "ValueError"),
        ("min([])", "ValueError"),
        ("{[1]: 2}", "TypeError: unhashable"),
        ('json.loads("[" * 3000 + "]" * 3000)', "RecursionError"),
    ],
)
def test_it_wraps_errors_raised_while_running(text: str, message: str):
    with pytest.raises(ExpressionError) as failed:
        evaluate(text)
    assert message in str(failed.value)


def test_it_accepts_text_up_to_the_length_limit():
    assert evaluate('"' + "x" * 998 + '"') == "x" * 998


@pytest.mark.parametrize("value", [1, None, b"1 + 1", ["1"]])
def test_it_refuses_text_that_is_not_a_string(value: Any):
    with pytest.raises(ExpressionError, match="must be a string"):
        evaluate(value)


@freeze
def test_it_resolves_expressions_nested_in_kwargs():
    kwargs = {
        "plain": 5,
        "when": {"$expr": "date.today() - timedelta(days=1)"},
        "list": [{"$expr": "1 + 2"}, "text", {"inner": {"$expr": '"a".upper()'}}],
        "tuple": ({"$expr": "2"},),
        "not_an_expression": {"$expr": "1 + 1", "other": 2},
        "not_text": {"$expr": 1},
    }
    resolved = resolve_kwargs(kwargs)
    assert resolved == {
        "plain": 5,
        "when": today() - timedelta(days=1),
        "list": [3, "text", {"inner": "A"}],
        "tuple": (2,),
        "not_an_expression": {"$expr": "1 + 1", "other": 2},
        "not_text": {"$expr": 1},
    }
    assert kwargs["when"] == {"$expr": "date.today() - timedelta(days=1)"}  # the input is left alone


def test_it_names_the_kwarg_whose_expression_failed():
    with pytest.raises(ExpressionError, match=r"^report\.days\[1\]: operator '/': ZeroDivisionError"):
        resolve_kwargs({"ok": {"$expr": "1"}, "report": {"days": [{"$expr": "1"}, {"$expr": "1 / 0"}]}})


def test_it_returns_kwargs_without_expressions_equal():
    kwargs = {"a": 1, "b": [1, {"c": "d"}], "e": None}
    assert resolve_kwargs(kwargs) == kwargs
    assert resolve_kwargs({}) == {}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"$expr": "1"}, True),
        ({"$expr": ""}, True),  # an expression, though evaluating it is refused
        ({"$expr": "1", "other": 1}, False),
        ({"$expr": 1}, False),
        ({"$expr": None}, False),
        ({"expr": "1"}, False),
        ({}, False),
        ("$expr", False),
        ([{"$expr": "1"}], False),
        (None, False),
    ],
)
def test_it_recognises_only_an_exact_expression_dict(value: Any, expected: bool):
    assert is_expression(value) is expected


# ---------------------------------------------------------------- fuzzing

PLAIN_TYPES = (type(None), bool, int, float, str, list, tuple, dict, datetime, date, time, timedelta)


def assert_plain(value: Any) -> None:
    """No class, function, method, module or other object may come out of evaluate."""
    stack = [value]
    while stack:
        item = stack.pop()
        assert type(item) in PLAIN_TYPES, f"{type(item)!r} leaked out of evaluate"
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)


@contextmanager
def no_code_execution() -> Iterator[list[str]]:
    """Record any call of eval, exec, or compile to code (ast.parse compiles to an AST only, which is fine).

    Calls are recorded rather than raised: evaluate wraps errors, which would hide a raised one.
    """
    calls: list[str] = []
    real_compile = builtins.compile

    def fake_eval(*args: Any, **kwargs: Any) -> None:
        calls.append(f"eval{args!r}")

    def fake_exec(*args: Any, **kwargs: Any) -> None:
        calls.append(f"exec{args!r}")

    def ast_only_compile(source: Any, filename: Any, mode: str, flags: int = 0, *args: Any, **kwargs: Any) -> Any:
        if not flags & ast.PyCF_ONLY_AST:
            calls.append(f"compile({source!r})")
        return real_compile(source, filename, mode, flags, *args, **kwargs)

    originals = builtins.eval, builtins.exec, builtins.compile
    builtins.eval, builtins.exec, builtins.compile = fake_eval, fake_exec, ast_only_compile
    try:
        yield calls
    finally:
        builtins.eval, builtins.exec, builtins.compile = originals


def check_safely(text: str) -> None:
    with no_code_execution() as calls:
        try:
            result = evaluate(text)
        except ExpressionError:
            result = None
    assert calls == []
    assert_plain(result)


def test_it_notices_code_execution_when_fuzzing():
    # The fuzz below relies on this guard; prove it records what it must.
    with no_code_execution() as calls:
        builtins.eval("1")  # noqa: S307 - the fake, which only records
        builtins.exec("x = 1")  # noqa: S102 - the fake, which only records
        compile("1", "<test>", "eval")
        ast.parse("1")
    assert len(calls) == 3


CALLABLE_NAMES = [
    "datetime",
    "date",
    "time",
    "timedelta",
    "len",
    "min",
    "max",
    "abs",
    "round",
    "int",
    "float",
    "str",
    "bool",
    "list",
    "dict",
    "sorted",
    "sum",
]
NAMESPACES = ["datetime", "date", "time", "timedelta", "json", "datetime.datetime", "datetime.date"]
FORBIDDEN_NAMES = [
    "__import__",
    "__builtins__",
    "__class__",
    "__globals__",
    "__subclasses__",
    "__dict__",
    "_private",
    "open",
    "os",
    "eval",
    "exec",
    "getattr",
    "type",
    "globals",
    "x",
]
NAME_TOKENS = [*CALLABLE_NAMES, "json", "None", "True", "False", *FORBIDDEN_NAMES]
ATTRIBUTE_TOKENS = [
    "now",
    "today",
    "utcnow",
    "combine",
    "fromisoformat",
    "fromtimestamp",
    "min",
    "max",
    "isoformat",
    "strftime",
    "replace",
    "date",
    "time",
    "timestamp",
    "weekday",
    "astimezone",
    "year",
    "days",
    "total_seconds",
    "dumps",
    "loads",
    "split",
    "join",
    "upper",
    "keys",
    "items",
    "get",
    "count",
    "index",
    "datetime",
    "timedelta",
    "JSONDecoder",
    "system",
    "center",
    "zfill",
    "format",
    "tzinfo",
    "__class__",
    "__reduce__",
    "__self__",
    "__globals__",
    "_private",
]
LITERAL_TOKENS = [
    "0",
    "1",
    "-1",
    "2",
    "10000",
    "100000",
    "999999999999999999",
    "1e308",
    "2.5",
    '""',
    '"a,b"',
    '"x"',
    '"%s"',
    '"[1, 2]"',
    '"{}"',
    '"2024-01-01"',
    '"%Y"',
    "[]",
    "{}",
    "()",
    "None",
    "True",
]
SYMBOL_TOKENS = [
    ".",
    ",",
    "(",
    ")",
    "[",
    "]",
    "{",
    "}",
    ":",
    "=",
    "+",
    "-",
    "*",
    "**",
    "/",
    "//",
    "%",
    "==",
    "<",
    ">=",
    "not",
    "and",
    "or",
    "if",
    "else",
    "lambda",
    "for",
    "in",
    "is",
    ":=",
    "yield",
    "await",
    'f"{1}"',
    "b'x'",
    "...",
]
BINARY_OPERATORS = ["+", "-", "*", "/", "//", "%", "**", "==", "!=", "<", ">=", "and", "or", "in", "is", "|", "@"]

FUZZ = settings(max_examples=400, deadline=2000, database=None, suppress_health_check=[HealthCheck.too_slow])

token_soup = st.lists(
    st.sampled_from(NAME_TOKENS + ATTRIBUTE_TOKENS + LITERAL_TOKENS + SYMBOL_TOKENS), max_size=40
).map(" ".join)


def _join(parts: list[str]) -> str:
    return ", ".join(parts)


def _extend(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """Well-formed expressions built from smaller ones, so fuzzing reaches the interpreter, not just the parser."""
    pairs = st.tuples(inner, inner)
    attribute = st.sampled_from(ATTRIBUTE_TOKENS)
    callee = st.one_of(
        st.sampled_from(CALLABLE_NAMES),
        st.tuples(st.sampled_from(NAMESPACES), attribute).map(".".join),
        st.tuples(inner, attribute).map(lambda t: f"({t[0]}).{t[1]}"),
    )
    keyword = st.tuples(st.sampled_from(["days", "hours", "indent", "sort_keys", "key", "default", "count"]), inner)
    builders: list[st.SearchStrategy[str]] = [
        st.tuples(inner, st.sampled_from(BINARY_OPERATORS), inner).map(lambda t: f"({t[0]} {t[1]} {t[2]})"),
        st.tuples(st.sampled_from(["-", "+", "not "]), inner).map("".join),
        st.tuples(inner, attribute).map(lambda t: f"({t[0]}).{t[1]}"),
        st.tuples(callee, st.lists(inner, max_size=3)).map(lambda t: f"{t[0]}({_join(t[1])})"),
        st.tuples(callee, keyword).map(lambda t: f"{t[0]}({t[1][0]}={t[1][1]})"),
        pairs.map(lambda t: f"({t[0]})[{t[1]}]"),
        pairs.map(lambda t: f"({t[0]})[{t[1]}:]"),
        st.lists(inner, max_size=4).map(lambda items: f"[{_join(items)}]"),
        pairs.map(lambda t: f"{{{t[0]}: {t[1]}}}"),
        st.tuples(inner, inner, inner).map(lambda t: f"({t[0]} if {t[1]} else {t[2]})"),
    ]
    return st.one_of(builders)


well_formed = st.recursive(
    st.one_of(
        st.sampled_from(LITERAL_TOKENS),
        st.integers(-1000, 1000).map(str),
        st.sampled_from(NAMESPACES),
        st.sampled_from(NAME_TOKENS),
    ),
    _extend,
    max_leaves=25,
)


@FUZZ
@given(st.text(max_size=200))
def test_it_survives_arbitrary_text(text: str):
    check_safely(text)


@FUZZ
@given(token_soup)
def test_it_survives_token_soup(text: str):
    check_safely(text)


@FUZZ
@given(well_formed)
def test_it_survives_well_formed_expressions(text: str):
    check_safely(text)


@settings(max_examples=200, deadline=2000, database=None)
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers(-(10**30), 10**30) | st.text(max_size=5), st.lists, max_leaves=10
    )
)
def test_it_round_trips_json_data(value: Any):
    # json.loads on whatever json.dumps made: the same data back, or a refusal for a limit.
    text = f"json.loads({json.dumps(json.dumps(value))})"
    try:
        result, refusal = evaluate(text), ""
    except ExpressionError as exc:
        result, refusal = None, str(exc)
    if refusal:
        assert any(limit in refusal for limit in ("integer too large", "too long", "nested too deeply"))
    else:
        assert result == value
