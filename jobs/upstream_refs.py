"""``{"$upstream": "result.rows"}`` in a python job's kwargs: a value of the run that fired it.

A job run after another (``Job.after``) can read what its upstream run gave: ``run_id`` (the
upstream run's id), ``status``, ``job_id``, or ``result`` and a path into it (``result.rows``,
``result.items.0.name``: object keys and list indexes, dot-separated). Like ``$expr`` it is a
restricted language, never evaluated as code: a path of plain names and numbers, bounded in
length, read from JSON data with dictionary and list lookups only.

The values are resolved when the downstream run is created (``runs.dependencies``) and kept on the
run as its one-off ``handler_kwargs``, so the run shows what it was given, and a retry gets the
same. A run that was not fired by an upstream run (a scheduled or manual run) gets ``None`` for
each reference, and so does a path that is not in the result.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from django.utils.translation import gettext as _

UPSTREAM_KEY = "$upstream"
MAX_PATH_CHARS = 200
ROOTS = ("run_id", "status", "job_id", "result")
_PATH = re.compile(r"(run_id|status|job_id)|result(\.[A-Za-z0-9_-]+)*")


def is_upstream_ref(value: object) -> bool:
    return isinstance(value, dict) and len(value) == 1 and UPSTREAM_KEY in value


def ref_problem(value: object) -> str | None:
    """Why ``{"$upstream": value}`` is refused, or None."""
    if not isinstance(value, str) or len(value) > MAX_PATH_CHARS or not _PATH.fullmatch(value):
        return _(
            "$upstream %(value)s: give 'run_id', 'status', 'job_id', 'result' or a path into it such as "
            "'result.rows' (names and list indexes, dot-separated, at most %(max)d characters)."
        ) % {"value": repr(value)[:80], "max": MAX_PATH_CHARS}
    return None


def has_refs(value: Any) -> bool:
    """Whether ``value`` holds an ``$upstream`` reference at any depth."""
    stack = [value]
    while stack:
        item = stack.pop()
        if is_upstream_ref(item):
            return True
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)
    return False


def resolve_refs(value: Any, upstream: Mapping[str, Any] | None) -> Any:
    """``value`` with each ``$upstream`` reference replaced by its value in ``upstream`` (the
    upstream run's ``run_id``, ``status``, ``job_id`` and ``result``), or None without one."""
    if is_upstream_ref(value):
        return _lookup(value[UPSTREAM_KEY], upstream)
    if isinstance(value, dict):
        return {key: resolve_refs(item, upstream) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [resolve_refs(item, upstream) for item in value]
    return value


def _lookup(path: object, upstream: Mapping[str, Any] | None) -> Any:
    if upstream is None or ref_problem(path) is not None:
        return None
    root, *steps = str(path).split(".")
    current: Any = upstream.get(root)
    for step in steps:
        if isinstance(current, dict):
            current = current.get(step)
        elif isinstance(current, list) and step.isdigit() and int(step) < len(current):
            current = current[int(step)]
        else:
            return None
    return current
