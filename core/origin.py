"""Where a change comes from: who made it, through what, from which address, and why.

A request (``OriginMiddleware``) or a command (``origin(...)``) says so once, at its edge; the
services that record versions and the audit trail read it (``current()``) instead of every call
passing it down. It is context, not a write: it changes nothing by itself.

``source`` is one of ``api``, ``admin``, ``weizhi``, ``import``, ``command`` or ``system`` (beat,
workers, anything no one asked for in a request or a command).
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from django.http import HttpRequest, HttpResponse

SOURCES = ("api", "admin", "weizhi", "import", "command", "system")
REASON_HEADER = "X-Change-Reason"
MAX_REASON = 500


@dataclass(frozen=True)
class Origin:
    source: str = "system"
    actor: Any = None  # the user (a django.contrib.auth user), or None: the system, a command
    client_ip: str = ""
    reason: str = ""

    @property
    def actor_name(self) -> str:
        """The user's name, or what made the change when no user did ("system", "import", …)."""
        if self.actor is not None and getattr(self.actor, "is_authenticated", False):
            return str(self.actor.get_username())
        return self.source if self.source in ("system", "import", "command") else "anonymous"


_SYSTEM = Origin()
_current: contextvars.ContextVar[Origin | None] = contextvars.ContextVar("crontask_origin", default=None)


def current() -> Origin:
    """The origin of what is being done now (``system`` outside any request or command)."""
    return _current.get() or _SYSTEM


@contextmanager
def origin(source: str, *, actor: Any = None, client_ip: str = "", reason: str = "") -> Iterator[Origin]:
    """Do what follows as coming from ``source`` (a command: ``with origin("import"): …``)."""
    made = Origin(source=source, actor=actor, client_ip=client_ip, reason=reason[:MAX_REASON])
    token = _current.set(made)
    try:
        yield made
    finally:
        _current.reset(token)


@contextmanager
def reason(text: str) -> Iterator[Origin]:
    """The current origin, with ``text`` as the reason (a write's ``change_reason`` field)."""
    made = replace(current(), reason=text[:MAX_REASON])
    token = _current.set(made)
    try:
        yield made
    finally:
        _current.reset(token)


def source_of(request: HttpRequest) -> str:
    path = request.path_info  # under a script prefix (FORCE_SCRIPT_NAME) too
    if path.startswith("/api/"):
        return "api"
    if path.startswith("/admin/"):
        return "admin"
    return "weizhi"


class OriginMiddleware:
    """Each request's origin: its source by path, its client address, and the reason of the
    ``X-Change-Reason`` header. The user is read when a service asks (``request.user`` is set by
    authentication later: session here, DRF's token in the view), so it is bound lazily."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        made = _RequestOrigin(
            source=source_of(request),
            client_ip=request.META.get("REMOTE_ADDR", ""),
            reason=request.headers.get(REASON_HEADER, "")[:MAX_REASON],
            request=request,
        )
        token = _current.set(made)
        try:
            return self.get_response(request)
        finally:
            _current.reset(token)


@dataclass(frozen=True)
class _RequestOrigin(Origin):
    request: Any = None

    def __getattribute__(self, name: str) -> Any:
        if name == "actor":
            request = object.__getattribute__(self, "request")
            # DRF sets the authenticated user on the Django request it wraps (token auth too).
            return getattr(request, "user", None) if request is not None else None
        return object.__getattribute__(self, name)
