"""Secrets are stored as given but never shown. This module is the one rule for what a secret is
and how it is masked; the API, the Weizhi paths, the admin, exports, runs and logs all use it.

A secret is:
- the value of a header or of a handler kwarg (at any depth) whose name contains one of
  ``SECRET_NAMES`` or of ``CRONTASK_SECRET_NAMES`` (case-insensitive): ``X-Auth-Key``,
  ``Ocp-Apim-Subscription-Key``, ``db.password``;
- in a URL, a body or a command: the value of a ``key=value`` or ``"key": "value"`` pair whose key
  is such a name (``?token=…``, ``password=…&…``, ``{"api_key": "…"}``, ``PGPASSWORD=…``), and a
  URL's password (``https://user:password@host``).

Three uses:
- shown: ``mask_job_data`` (and the functions it calls) replaces them by ``MASK``;
- sent back: ``restore_masked`` puts the stored value back wherever ``MASK`` returns (a PUT of a
  GET's output, the admin form saved again, an export imported onto its jobs), and refuses a
  ``MASK`` that stands for no stored value;
- echoed: a run's output may quote the job's secret values (a target that echoes its request, a
  handler that logs its kwargs); ``secret_values`` and ``mask_values`` replace them, verbatim,
  when the outcome is stored.
"""

from __future__ import annotations

import functools
import json
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _

if TYPE_CHECKING:
    from jobs.models import Job

MASK = "********"
#: Substrings of the names whose values are secrets; CRONTASK_SECRET_NAMES adds to them.
SECRET_NAMES = ("auth", "token", "secret", "password", "passwd", "key", "signature", "cookie", "session", "credential")
#: Job fields that may hold secrets: JSON objects, masked by key, and text, masked by pattern.
JSON_FIELDS = ("headers", "handler_kwargs")
TEXT_FIELDS = ("url", "body", "command")
#: Shorter values are not searched for in a run's output: "abc" or "1" would mangle any text.
MIN_SECRET_LENGTH = 4
#: A secret value's whitespace-separated parts ("Bearer <token>": the token) are searched for too,
#: when at least this long: "Bearer" or "Basic" alone are no secret.
MIN_PART_LENGTH = 8

# key=value pairs in URLs, bodies and messages (?token=abc, &password=x), and "key": "value" pairs
# in JSON; masked when the key is a secret name. Each starts only at a token boundary and the key's
# test is a second, separate search: the naive one-pattern form backtracks quadratically on long
# runs of word characters (hours at 64 KB). A JSON value ends at the first unescaped quote, so no
# start is scanned past the next one.
_PAIR = re.compile(r"(?<![\w.-])(?P<key>[\w.-]+)=(?P<value>[^&\s#'\"]+)")
_JSON_PAIR = re.compile(r'(?<!\\)"(?P<key>[^"\\\s]{1,100})"\s*:\s*"(?P<value>(?:[^"\\]|\\.)+)"')
_URL_USERINFO = re.compile(
    r"(?<![a-z0-9+.-])(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<user>[^/@:\s]*):(?P<value>[^/@\s]+)@", re.I
)
# A chat robot's webhook whose URL is its credential: the last part of the path is its token.
# Each is named (what a mask stands for, so that one sent back masked keeps its own value).
_SLACK_HOOK = re.compile(r"hooks\.slack\.com/services/[^/\s]+/[^/\s]+/(?P<value>[^/\s?#\"']+)", re.I)
_SLACK_HOOK_PART = "the Slack webhook's token"
_FEISHU_HOOK = re.compile(
    r"(?:open\.feishu\.cn|open\.larksuite\.com)/open-apis/bot/v2/hook/(?P<value>[^/\s?#\"']+)", re.I
)
_FEISHU_HOOK_PART = "the Feishu webhook's token"
_HOOK_TOKENS = ((_SLACK_HOOK, _SLACK_HOOK_PART), (_FEISHU_HOOK, _FEISHU_HOOK_PART))
_ALWAYS_SECRET = frozenset({"the URL's password", _SLACK_HOOK_PART, _FEISHU_HOOK_PART})
_ABSENT = object()


@functools.lru_cache(maxsize=8)
def _names(extra: tuple[str, ...]) -> re.Pattern[str]:
    return re.compile("|".join(re.escape(name) for name in sorted({*SECRET_NAMES, *extra}, key=len)), re.I)


def is_secret_name(name: str) -> bool:
    """Whether a header, kwarg or parameter called ``name`` holds a secret."""
    return bool(_names(tuple(settings.CRONTASK_SECRET_NAMES)).search(name))


# --- shown ---------------------------------------------------------------------------------


def mask_job_data(data: Mapping[str, Any]) -> dict[str, Any]:
    """``data`` (a job's fields, or a run's overrides) with the secrets in its headers,
    handler_kwargs, url, body and command masked; other fields as they are."""
    masked = dict(data)
    if isinstance(data.get("headers"), dict):
        masked["headers"] = mask_headers(data["headers"])
    if "handler_kwargs" in data:
        masked["handler_kwargs"] = mask_kwargs(data["handler_kwargs"])
    for name in TEXT_FIELDS:
        if isinstance(data.get(name), str):
            masked[name] = mask_text(data[name])
    return masked


def masked_job(job: Job) -> dict[str, Any]:
    """The fields of ``job`` that may hold secrets, masked."""
    return mask_job_data({name: getattr(job, name) for name in (*JSON_FIELDS, *TEXT_FIELDS)})


def mask_headers(headers: Mapping[str, Any] | None) -> dict[str, Any]:
    return {name: (_masked(value) if is_secret_name(str(name)) else value) for name, value in (headers or {}).items()}


def mask_kwargs(value: Any) -> Any:
    """``value`` with the value of every secret key masked, at any depth (lists included).
    The value of a secret key is masked whole, even an object: ``"credentials": {…}``."""
    if isinstance(value, dict):
        return {k: (_masked(v) if is_secret_name(str(k)) else mask_kwargs(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [mask_kwargs(item) for item in value]
    return value


def _masked(value: Any) -> Any:
    # None, a boolean and a blank tell nothing, and are more useful shown as they are.
    return value if value is None or isinstance(value, bool) or value == "" else MASK


def mask_overrides(overrides: Mapping[str, Any] | None) -> dict[str, Any]:
    """A manual run's one-off values (headers, handler_kwargs, body), masked."""
    return mask_job_data(overrides or {})


def mask_text(text: str) -> str:
    """``text`` with URL passwords, Slack and Feishu webhook tokens and the values of secret key=value and
    "key": "value" pairs masked: a URL, a form or JSON body, a command, a run's target, an error
    message."""
    return _replace(text, [(start, end, MASK) for start, end, _ in _secret_spans(text)])


def _secret_spans(text: str) -> list[tuple[int, int, str]]:
    """Where ``text`` holds secret values: (start, end, what), in order and not overlapping.
    ``what`` names the value, for a message and to match a value sent back masked with its own."""
    found = [(m.start("value"), m.end("value"), "the URL's password") for m in _URL_USERINFO.finditer(text)]
    for hook, part in _HOOK_TOKENS:
        found += [(m.start("value"), m.end("value"), part) for m in hook.finditer(text)]
    for pattern in (_PAIR, _JSON_PAIR):
        found += [(m.start("value"), m.end("value"), repr(m["key"])) for m in pattern.finditer(text)]
    spans: list[tuple[int, int, str]] = []
    end = -1
    for span in sorted(found):
        if span[0] >= end and (span[2] in _ALWAYS_SECRET or is_secret_name(span[2])):
            spans.append(span)
            end = span[1]
    return spans


def _replace(text: str, replacements: Sequence[tuple[int, int, str]]) -> str:
    """``text`` with each (start, end) span replaced; the spans are in order and do not overlap."""
    parts, position = [], 0
    for start, end, new in replacements:
        parts += [text[position:start], new]
        position = end
    parts.append(text[position:])
    return "".join(parts)


# --- sent back -----------------------------------------------------------------------------


def restore_masked(fields: Mapping[str, Any], stored: Job | None) -> dict[str, Any]:
    """``fields`` (new values for a job) with every ``MASK`` that comes back replaced by the stored
    value it stands for: the same header, the same kwarg (by path), the same URL password or
    parameter. Raises ValidationError, naming the field and the value, for a ``MASK`` that stands
    for nothing stored (a new job, a new key): saved, it would be sent as the value."""
    restored = dict(fields)
    problems: dict[str, str] = {}
    for name in JSON_FIELDS:
        if name in fields:
            missing: list[str] = []
            kept = getattr(stored, name) if stored is not None else _ABSENT
            restored[name] = _keep_json(fields[name], kept, "", missing)
            if missing:
                problems[name] = _unkept(", ".join(repr(path) for path in missing))
    for name in TEXT_FIELDS:
        if isinstance(fields.get(name), str) and MASK in fields[name]:
            restored[name], missing = _keep_text(fields[name], getattr(stored, name) if stored is not None else "")
            if missing:
                problems[name] = _unkept(", ".join(dict.fromkeys(missing)))
    if problems:
        raise ValidationError(problems)
    return restored


def _unkept(what: str) -> str:
    return _(
        "The value of %(what)s is the mask %(mask)s, which stands for a stored secret, and there is none "
        "to keep here: give the value itself."
    ) % {"what": what, "mask": MASK}


def _keep_json(incoming: Any, stored: Any, path: str, missing: list[str]) -> Any:
    if isinstance(incoming, str) and incoming == MASK:
        if stored is _ABSENT:
            missing.append(path)
            return incoming
        return stored
    if isinstance(incoming, dict):
        base = stored if isinstance(stored, dict) else {}
        return {
            key: _keep_json(value, base.get(key, _ABSENT), f"{path}.{key}" if path else str(key), missing)
            for key, value in incoming.items()
        }
    if isinstance(incoming, list):
        items = stored if isinstance(stored, list) else []
        return [
            _keep_json(item, items[index] if index < len(items) else _ABSENT, f"{path}[{index}]", missing)
            for index, item in enumerate(incoming)
        ]
    return incoming


def _keep_text(incoming: str, stored: str) -> tuple[str, list[str]]:
    """``incoming`` with each masked secret value given its stored value: the n-th ``token=`` its
    n-th stored ``token=`` (or the last one), the URL's password the stored URL's password."""
    kept: dict[str, list[str]] = defaultdict(list)
    for start, end, what in _secret_spans(stored or ""):
        kept[what].append(stored[start:end])
    seen: Counter[str] = Counter()
    replacements, missing = [], []
    for start, end, what in _secret_spans(incoming):
        if incoming[start:end] != MASK:
            continue
        if not kept[what]:
            missing.append(what)
            continue
        replacements.append((start, end, kept[what][min(seen[what], len(kept[what]) - 1)]))
        seen[what] += 1
    return _replace(incoming, replacements), missing


def restore_masked_text(incoming: str, stored: str, *, field: str) -> str:
    """A text (a URL, a body) sent back with masked secret values, given its stored values again;
    ValidationError on ``field`` for a ``MASK`` that stands for nothing stored."""
    if MASK not in incoming:
        return incoming
    restored, missing = _keep_text(incoming, stored)
    if missing:
        raise ValidationError({field: _unkept(", ".join(dict.fromkeys(missing)))})
    return restored


def keep_masked_headers(incoming: Mapping[str, Any], stored: Mapping[str, Any]) -> dict[str, Any]:
    """Headers sent back masked keep their stored value (a masked header with none stays masked)."""
    return _keep_json(dict(incoming), dict(stored), "", [])


# --- echoed --------------------------------------------------------------------------------


def secret_values(job: Job, overrides: Mapping[str, Any] | None = None) -> tuple[str, ...]:
    """The secret values of ``job`` and of a manual run's ``overrides``, in every form a text may
    quote them (see ``value_forms``), longest first: what ``mask_values`` replaces."""
    overrides = overrides or {}
    found: list[Any] = []
    for headers in (job.headers, overrides.get("headers")):
        if isinstance(headers, dict):
            found += [value for name, value in headers.items() if is_secret_name(str(name))]
    for kwargs in (job.handler_kwargs, overrides.get("handler_kwargs")):
        found += _secret_strings(kwargs, secret=False)
    for text in (job.url, job.body, job.command, overrides.get("body")):
        if isinstance(text, str):
            found += [text[start:end] for start, end, _ in _secret_spans(text)]
    return value_forms(found)


def text_secret_values(text: str) -> list[str]:
    """The secret values a text (a URL, a body) holds: its URL password, its secret parameters."""
    return [text[start:end] for start, end, _ in _secret_spans(text)]


def _secret_strings(value: Any, *, secret: bool) -> list[str]:
    """The strings in ``value`` under a secret key, at any depth."""
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in _secret_strings(v, secret=secret or is_secret_name(str(k)))]
    if isinstance(value, list):
        return [s for item in value for s in _secret_strings(item, secret=secret)]
    return [value] if secret and isinstance(value, str) else []


def value_forms(values: Iterable[Any]) -> tuple[str, ...]:
    """The forms in which a text may quote each value: as it is (without surrounding whitespace),
    as Python's repr and JSON escape it, percent-decoded, and its long whitespace-separated parts;
    each at least MIN_SECRET_LENGTH long. Longest first, so that a whole value is masked whole."""
    forms: set[str] = set()
    for value in values:
        if not isinstance(value, str) or value == MASK:
            continue
        value = value.strip()
        candidates = {value, repr(value)[1:-1], json.dumps(value)[1:-1], unquote(value)}
        candidates |= {part for part in value.split() if len(part) >= MIN_PART_LENGTH}
        forms |= {form for form in candidates if len(form) >= MIN_SECRET_LENGTH and form not in MASK}
    return tuple(sorted(forms, key=len, reverse=True))


def mask_message(text: str, values: Sequence[str]) -> str:
    """A message (an error, a traceback): ``values`` masked (``mask_values``) and whatever else
    looks like a secret (``mask_text``), since a message is not data."""
    return mask_text(mask_values(text, values))


def mask_values(text: str, values: Sequence[str]) -> str:
    """``text`` with each of ``values`` (from ``secret_values`` or ``value_forms``) masked wherever
    it appears. Only those values: a run's output is data, so nothing else in it is rewritten."""
    for value in values:
        if value in text:
            text = text.replace(value, MASK)
    return text


def mask_json_values(value: Any, values: Sequence[str]) -> Any:
    """A JSON value (a handler's result) with ``values`` masked in every string and key."""
    if not values:
        return value
    if isinstance(value, str):
        return mask_values(value, values)
    if isinstance(value, dict):
        return {mask_values(str(k), values): mask_json_values(v, values) for k, v in value.items()}
    if isinstance(value, list):
        return [mask_json_values(item, values) for item in value]
    return value
