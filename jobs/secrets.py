"""Secret values are stored as given but never shown: API, admin, run targets and logs mask them."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

MASK = "********"
SENSITIVE_NAME = re.compile(r"authorization|cookie|x-api-key|api[-_]?key|token|secret|passw(or)?d|credential", re.I)
# key=value pairs in URLs and messages (?token=abc, &password=x); masked when the key is sensitive.
# Both patterns start only at a token boundary and the key's test is a second, separate search: the
# naive one-pattern form backtracks quadratically on long runs of word characters (hours at 64 KB).
_PAIR = re.compile(r"(?<![\w.-])(?P<key>[\w.-]+)=(?P<value>[^&\s#'\"]+)")
_SENSITIVE_KEY = re.compile(r"token|secret|passw(?:or)?d|api[-_]?key|auth|credential", re.I)
_URL_USERINFO = re.compile(
    r"(?<![a-z0-9+.-])(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<user>[^/@:\s]*):(?P<password>[^/@\s]+)@", re.I
)


def is_sensitive(name: str) -> bool:
    return bool(SENSITIVE_NAME.search(name))


def mask_headers(headers: Mapping[str, Any] | None) -> dict[str, Any]:
    return {name: (MASK if is_sensitive(name) else value) for name, value in (headers or {}).items()}


def mask_overrides(overrides: Mapping[str, Any] | None) -> dict[str, Any]:
    """A manual run's one-off values, with its headers masked."""
    data = dict(overrides or {})
    if isinstance(data.get("headers"), dict):
        data["headers"] = mask_headers(data["headers"])
    return data


def keep_masked_headers(incoming: Mapping[str, Any], stored: Mapping[str, Any]) -> dict[str, Any]:
    """Headers sent back masked (a GET's output in a PUT, the admin form) keep their stored value."""
    return {name: (stored[name] if value == MASK and name in stored else value) for name, value in incoming.items()}


def mask_text(text: str) -> str:
    """Mask secret query parameters and URL passwords in free text (targets, error messages)."""
    text = _URL_USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:{MASK}@", text)
    return _PAIR.sub(lambda m: f"{m['key']}={MASK}" if _SENSITIVE_KEY.search(m["key"]) else m[0], text)
