"""A memo for one bulk call (``jobs.bulk.jobs_create_many``): what checking thousands of entries
computes again and again (a cron parsed, a host's egress decision, a field's check of a value the
entries share) is computed once per call and reused by its later entries.

Only inside ``bulk_memo()``: elsewhere (the API, the admin, beat) ``memoized`` computes every time.
The memo lives for one call and is dropped after it, so a policy or a setting changed between two
calls (or a host's DNS) is read afresh. Keys include the active language: what is kept may be a
message, and a call may switch languages (``translated``). An error is kept as its messages and raised anew for
each entry that meets it, so every entry still reports its own.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, TypeVar

from django.utils.translation import get_language

T = TypeVar("T")

_memo: ContextVar[dict[Hashable, Any] | None] = ContextVar("jobs_bulk_memo", default=None)


@contextmanager
def bulk_memo() -> Iterator[None]:
    """Memoize ``memoized`` calls until the block ends (a nested block shares the outer memo)."""
    if _memo.get() is not None:
        yield
        return
    token = _memo.set({})
    try:
        yield
    finally:
        _memo.reset(token)


def memoized(kind: str, key: Hashable, compute: Callable[[], T], *, translated: Callable[[T], bool] | None = None) -> T:
    """``compute()``, or within ``bulk_memo`` what it returned for the same ``kind`` and ``key``
    before. It must depend on nothing but those for the length of a call. ``translated(value)``
    says whether a value holds messages (in the active language): such a value is kept for that
    language only (reading the language costs more than the look-up, so only then is it read)."""
    memo = _memo.get()
    if memo is None:
        return compute()
    kept = memo.get((kind, key), _MISSING)
    if kept is _MISSING or type(kept) is _PerLanguage:
        language = get_language()
        if kept is not _MISSING and language in kept:
            return kept[language]
        value = compute()
        if translated is not None and translated(value):
            if kept is _MISSING:
                kept = memo[(kind, key)] = _PerLanguage()
            kept[language] = value
        else:
            memo[(kind, key)] = value
        return value
    return kept


def memo_table(kind: str) -> dict[Hashable, Any] | None:
    """Within ``bulk_memo``, a table of the call's own for ``kind`` (the caller keeps and reads
    what it likes in it: what ``memoized``'s exact keys cannot say); else None."""
    memo = _memo.get()
    if memo is None:
        return None
    table = memo.get(("table", kind))
    if table is None:
        table = memo[("table", kind)] = {}
    return table


class _PerLanguage(dict[str | None, Any]):
    """The values of one key that hold messages, by language."""


_MISSING: Any = object()
