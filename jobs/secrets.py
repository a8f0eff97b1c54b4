"""Secret values are stored as given but never shown: API, admin, run targets and logs mask them."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

MASK = "********"
SENSITIVE_NAME = re.compile(r"authorization|cookie|x-api-key|api[-_]?key|token|secret|passw(or)?d|credential", re.I)
# key=value pairs in URLs and messages whose key is sensitive (?token=abc, &password=x)
_SENSITIVE_PAIR = re.compile(
    r"(?P<key>[\w.-]*(?:token|secret|passw(?:or)?d|api[-_]?key|auth|credential)[\w.-]*)=(?P<value>[^&\s#'\"]+)",
    re.I,
)
_URL_USERINFO = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<user>[^/@:\s]*):(?P<password>[^/@\s]+)@", re.I)


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
    return _SENSITIVE_PAIR.sub(lambda m: f"{m['key']}={MASK}", text)
