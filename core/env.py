"""Typed readers for settings that come from the environment.

Each raises ``ImproperlyConfigured`` on a value it cannot read, so a typo in a deployment
stops the process at start instead of being silently replaced by a default.
"""

from __future__ import annotations

import ipaddress
import os
import re
from urllib.parse import unquote, urlsplit

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def envstr(name: str, default: str) -> str:
    return os.environ.get(name, default)


def envbool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name} must be true or false, not {raw!r}")


def envint(name: str, default: int, *, minimum: int | None = None, maximum: int | None = None) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, not {raw!r}") from None
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, not {value}")
    if maximum is not None and value > maximum:
        raise ImproperlyConfigured(f"{name} must be at most {maximum}, not {value}")
    return value


def envlist(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None:
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


# A DNS name: labels of letters, digits, "-" and "_", the last not all digits (that is an address).
_HOST_NAME = re.compile(r"(?:[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?\.)*[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def host_entry(item: str) -> Network | str:
    """One entry of a host list: a network (``10.0.0.0/8``, a bare address, ``[fd00::1]``) or a
    host name, lower-cased, without a trailing dot or a leading ``*.``/``.`` (a name stands for
    itself and every name under it). ValueError if it is neither."""
    text = item.strip().lower()
    if text.startswith("[") and "]" in text:
        text = text[1:].replace("]", "", 1)  # "[fd00::1]/128" as well as "[fd00::1]"
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        pass
    name = text.removeprefix("*.").removeprefix(".").removesuffix(".")
    if len(name) > 253 or not _HOST_NAME.fullmatch(name) or name.rsplit(".", 1)[-1].isdigit():
        raise ValueError(f"{item!r} is neither a CIDR, an address nor a host name")
    return name


def envhosts(name: str) -> list[str]:
    """A comma-separated list of CIDRs, addresses and host names, each normalised (see ``host_entry``)."""
    entries = []
    for item in envlist(name, []):
        try:
            entries.append(str(host_entry(item)))
        except ValueError as exc:
            raise ImproperlyConfigured(f"{name}: {exc}") from None
    return entries


_RATE = re.compile(r"(?P<count>[0-9]+)/(?P<period>s|sec|second|m|min|minute|h|hour|d|day)s?", re.IGNORECASE)


def envrate(name: str) -> str:
    """A DRF throttle rate such as ``1000/hour`` (periods: second, minute, hour, day; abbreviated
    to their first letter or to sec, min), normalised to lower case; "" (unset or empty) means off."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return ""
    match = _RATE.fullmatch(raw.replace(" ", ""))
    if match is None or int(match["count"]) < 1:
        raise ImproperlyConfigured(f"{name} must be a rate such as 100/minute or 1000/hour, not {raw!r}")
    return f"{int(match['count'])}/{match['period'].lower()}"


_EMAIL_SCHEMES = {"smtp": (False, False), "smtp+tls": (True, False), "smtp+ssl": (False, True)}


def envemail(name: str) -> dict[str, object]:
    """Django's SMTP settings from a URL such as ``smtp+tls://user:password@host:587`` (schemes:
    ``smtp``, ``smtp+tls`` for STARTTLS, ``smtp+ssl`` for implicit TLS; user and password
    percent-decoded). Empty (unset) is {}: the ``EMAIL_*`` variables apply."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return {}
    parts = urlsplit(raw)
    if parts.scheme not in _EMAIL_SCHEMES or not parts.hostname:
        raise ImproperlyConfigured(f"{name} must be smtp://, smtp+tls:// or smtp+ssl://user:password@host:port")
    use_tls, use_ssl = _EMAIL_SCHEMES[parts.scheme]
    try:
        port = parts.port or (465 if use_ssl else 587 if use_tls else 25)
    except ValueError:
        raise ImproperlyConfigured(f"{name} has a port that is not a number") from None
    return {
        "EMAIL_HOST": parts.hostname,
        "EMAIL_PORT": port,
        "EMAIL_HOST_USER": unquote(parts.username or ""),
        "EMAIL_HOST_PASSWORD": unquote(parts.password or ""),
        "EMAIL_USE_TLS": use_tls,
        "EMAIL_USE_SSL": use_ssl,
    }
