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

The package: ``vocabulary`` (the names, attributes and types an expression may use, and
``ExpressionError``), ``limits`` (the size of values), ``checks`` (parsing and the static checks),
``guards`` (calls that can grow values), ``evaluator`` (the interpreter) and ``budget`` (how many
expressions one job may hold). This module is their public face.
"""

from __future__ import annotations

from typing import Any

from jobs.expressions.budget import MAX_EXPRESSION_CHARS, MAX_EXPRESSIONS, budget_problem
from jobs.expressions.checks import compile_expression
from jobs.expressions.evaluator import evaluate_tree
from jobs.expressions.vocabulary import EXPRESSION_KEY, NAMES, ExpressionError, is_expression

__all__ = [
    "EXPRESSION_KEY",
    "MAX_EXPRESSIONS",
    "MAX_EXPRESSION_CHARS",
    "NAMES",
    "ExpressionError",
    "budget_problem",
    "evaluate",
    "is_expression",
    "resolve_kwargs",
    "validate_expression",
]


def validate_expression(text: str) -> None:
    """Parse and check ``text`` without running it; raises :class:`ExpressionError` if refused."""
    compile_expression(text)


def evaluate(text: str) -> Any:
    """Evaluate ``text``; anything refused, and any error while running, is an :class:`ExpressionError`."""
    return evaluate_tree(compile_expression(text))


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
