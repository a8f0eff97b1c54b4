"""The rules of a job's values (``validate_job``), which ``jobs.preparation.job_prepare`` applies
with the model's own field checks: the one path the API, the admin form, imports and the Weizhi
paths all take, so every entry point gives the same field-keyed errors. Not ``Job.clean()``:
checking a python job's arguments imports its handler's code, which only preparing a job may do.

The one-off overrides of a manual run are checked here too (``run_override_errors``), with the
same header, body and handler-argument rules as the job they apply to.

A job's values are bounded (``MAX_*`` below), and the bounds are checked first, by measures that
cost little for any input (one ``json.dumps``, one count that stops at the limit): an oversized
value is refused before anything walks or parses it. Each expression is bounded on its own
(``jobs.expressions``), but 5,977 of them once took 8 s to save and ~100 min of worker CPU to run.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import URLValidator
from django.db.models import Field
from django.utils.translation import gettext as _
from django_celery_beat.models import CrontabSchedule

from jobs.dependencies import after_problems
from jobs.egress import EgressDenied, check_host
from jobs.expressions import budget_problem
from jobs.handlers import expression_problems, kwargs_problems
from jobs.memo import memoized
from jobs.tags import tag_problems
from jobs.triggers import get_zone, shortest_gap, validate_cron

if TYPE_CHECKING:
    from jobs.models import Job

# Per job, and per manual run with its overrides merged in: bytes as UTF-8 (kwargs and headers as
# compact JSON, as stored). A job's values are read on every save, export and run.
MAX_BODY_BYTES = 64 * 1024
MAX_HEADERS_BYTES = 64 * 1024
MAX_KWARGS_BYTES = 64 * 1024
MAX_HEADERS = 100
# fullmatch, not match with $: "$" also matches before a final "\n", so "os:system\n" would pass.
HANDLER_PATTERN = re.compile(r"scripts:[A-Za-z_][A-Za-z0-9_]*|[A-Za-z_][A-Za-z0-9_.]*:[A-Za-z_][A-Za-z0-9_]*")
HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
# A cron's fields as django-celery-beat's CrontabSchedule columns name them (seconds have none).
CRONTAB_COLUMNS = {
    "minute": "minute",
    "hour": "hour",
    "day_of_month": "day-of-month",
    "month_of_year": "month",
    "day_of_week": "weekday",
}

_url_validator = URLValidator(schemes=["http", "https"])


def compile_url_pattern() -> None:
    """Compile the URL check's pattern now: Django compiles it on its first use, which takes 25 to
    70 ms, and each thread of a web worker that meets it before it is done compiles it again.
    The web process calls this as it loads (``crontask.wsgi``), before its first request."""
    _url_validator("http://localhost/")  # a URL it takes: the lazy pattern, and the class's it wraps, compiled


#: Calendars a job names at most.
MAX_CALENDARS = 20
# Which calendar ids name no calendar: the calendars app (above jobs) registers it when it loads.
_calendar_checks: list[Callable[[list[int]], list[int]]] = []


def register_calendar_check(check: Callable[[list[int]], list[int]]) -> None:
    """``check(ids)`` returns the ids that name no calendar (``calendars.apps`` registers it)."""
    if check not in _calendar_checks:
        _calendar_checks.append(check)


def validate_job(job: Job) -> None:
    errors: dict[str, list[str]] = {}
    # An oversized value is refused on its size alone: the other checks walk every value.
    bounds = _check_bounds(job)
    checks = (
        (_check_trigger,)
        if bounds
        else (
            _check_text,
            _check_tags,
            _check_trigger,
            _check_kind,
            _check_concurrency,
            _check_calendars,
            after_problems,
        )
    )
    for field, message in bounds:
        errors.setdefault(field, []).append(message)
    for check in checks:
        for field, message in check(job):
            errors.setdefault(field, []).append(message)
    if errors:
        raise ValidationError(errors)


def _check_tags(job: Job) -> list[tuple[str, str]]:
    return [("tags", problem) for problem in tag_problems(job.tags)]


def _check_calendars(job: Job) -> list[tuple[str, str]]:
    ids = job.calendars
    if not isinstance(ids, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
        return [("calendars", _("A list of calendar ids (whole numbers)."))]
    if len(ids) > MAX_CALENDARS:
        return [("calendars", _("At most %(n)d calendars.") % {"n": MAX_CALENDARS})]
    if len(set(ids)) != len(ids):
        return [("calendars", _("An id is given twice."))]
    if not ids:
        return []  # most jobs name none: no look-up
    unknown = sorted({i for check in _calendar_checks for i in check(ids)})
    if unknown:
        return [("calendars", _("No calendar with the id(s) %(ids)s.") % {"ids": ", ".join(map(str, unknown))})]
    return []


def _check_concurrency(job: Job) -> list[tuple[str, str]]:
    """``max_concurrent`` limits the runs ``allow`` lets overlap; ``forbid`` (one) and ``replace``
    (one, the newest) set their own."""
    if job.max_concurrent is not None and job.concurrency_policy != job.ConcurrencyPolicy.ALLOW:
        policy = job.concurrency_policy
        message = _("Only with the 'allow' policy ('%(policy)s' runs one at a time); leave it empty.")
        return [("max_concurrent", message % {"policy": policy})]
    return []


def text_problem(value: object) -> str | None:
    """Why PostgreSQL cannot store ``value`` (text, or JSON data at any depth), or None.

    It refuses NUL in text and ``\\u0000`` in jsonb, and text with an unpaired surrogate cannot
    even be encoded to send it: each was a 500 at save time. SQLite takes both, so check here.
    """
    stack = [value]
    while stack:  # not recursive: JSON from an import can be nested deeper than the stack
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return _("Must not contain NUL (\\u0000) characters.")
            try:
                item.encode()
            except UnicodeEncodeError:
                return _("Must not contain unpaired surrogates (\\ud800-\\udfff).")
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)
    return None


def json_size(value: object) -> int:
    """Bytes of ``value`` as compact JSON in UTF-8, as it is stored."""
    if not value and type(value) in (dict, list):
        return 2  # {} or [], the default of most jobs
    try:
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
    except (TypeError, ValueError):
        return 0  # not JSON at all (a Python caller's dict with tuple keys): the field's own check says so
    return len(text.encode(errors="surrogatepass"))


def _too_large(size: int, limit: int, what: str = "") -> list[str]:
    if size <= limit:
        return []
    message = _("At most %(kib)d KiB (%(limit)d bytes)%(what)s; this is %(size)d bytes.")
    return [message % {"kib": limit // 1024, "limit": limit, "what": what, "size": size}]


def kwargs_bound_problems(kwargs: object) -> list[str]:
    """The size and expression count of a job's ``handler_kwargs``: measured before anything else
    looks at them, and the count stops at the limit, so even megabytes are refused in milliseconds."""
    problems = _too_large(json_size(kwargs), MAX_KWARGS_BYTES, " as JSON")
    if not problems:
        problem = budget_problem(kwargs)
        problems = [problem] if problem else []
    return problems


def header_bound_problems(headers: object) -> list[str]:
    if isinstance(headers, dict) and len(headers) > MAX_HEADERS:
        return [_("At most %(n)d headers.") % {"n": MAX_HEADERS}]
    size = json_size(headers)
    return _too_large(size, MAX_HEADERS_BYTES, _(" as JSON")) if size > MAX_HEADERS_BYTES else []


def body_bound_problems(body: object) -> list[str]:
    if not isinstance(body, str):
        return []  # body_problems says what it must be
    return _too_large(len(body.encode(errors="surrogatepass")), MAX_BODY_BYTES)


def body_problems(body: object) -> list[str]:
    if not isinstance(body, str):
        return [_("Must be text.")]
    return body_bound_problems(body)


def header_problems(headers: object) -> list[str]:
    """What is wrong with ``headers``. The messages never quote a value: values hold secrets."""
    if not isinstance(headers, dict):
        return [_("Must be a JSON object of header names to string values.")]
    problems = header_bound_problems(headers)
    if problems:
        return problems
    for name, value in headers.items():
        if not isinstance(name, str) or not HEADER_NAME.fullmatch(name):
            problems.append(_("%(name).80r is not a valid header name.") % {"name": name})
        elif not isinstance(value, str):
            problems.append(_("The value of %(name)r must be a string.") % {"name": name})
        elif "\r" in value or "\n" in value or "\0" in value:
            problems.append(_("The value of %(name)r must not contain line breaks.") % {"name": name})
        elif value != value.strip():
            # requests refuses these at send time with InvalidHeader, whose message quotes the value.
            problems.append(_("The value of %(name)r must not start or end with whitespace.") % {"name": name})
        elif not value.isascii() and not _is_latin1(value):
            # http.client encodes header values as Latin-1; anything else fails every run.
            problems.append(
                _("The value of %(name)r must be Latin-1 text (percent-encode other characters).") % {"name": name}
            )
    return problems


def run_override_errors(overrides: Mapping[str, Any], job: Job | None = None) -> dict[str, list[str]]:
    """Field-keyed problems with the one-off values of a manual run of ``job``.

    The executor merges them over the job's own (``{**job.headers, **headers}``, the same for
    ``handler_kwargs``; ``body`` replaces), so the merged values must pass the job's rules.
    Without a job only the checks that do not depend on it are made.
    """
    errors = {}
    for field, value in overrides.items():
        problems = _override_problems(field, value, job)
        if problems:
            errors[field] = problems
    return errors


# Which kind of job each override is for, as said in messages.
_OVERRIDE_KINDS = {
    "headers": ("http", "an http job"),
    "body": ("http", "an http job"),
    "handler_kwargs": ("python", "a python job"),
}


# The bound of each override, measured on its own before anything walks it (merged with the
# job's own values, it is measured again).
_OVERRIDE_BOUNDS: dict[str, Callable[[object], list[str]]] = {
    "headers": lambda value: header_bound_problems(value) if isinstance(value, dict) else [],
    "body": body_bound_problems,
    "handler_kwargs": lambda value: kwargs_bound_problems(value) if isinstance(value, dict) else [],
}


def _override_problems(field: str, value: object, job: Job | None) -> list[str]:
    bound = _OVERRIDE_BOUNDS.get(field)
    problems = bound(value) if bound else []
    if problems:
        return problems
    problem = text_problem(value)
    if problem:
        return [problem]
    kind, label = _OVERRIDE_KINDS.get(field, (None, ""))
    if job is not None and kind is not None and job.kind != kind:
        return [_("Only for %(kind)s; this one is %(this)s.") % {"kind": label, "this": job.kind}]
    if field == "headers":
        problems = header_problems(value)
        if not problems and job is not None:
            merged = {**job.headers, **cast(dict[str, str], value)}  # header_problems found none: a dict of str
            if len(merged) > MAX_HEADERS:
                problems = [_("At most %(n)d headers, with the job's own.") % {"n": MAX_HEADERS}]
            else:
                problems = _too_large(json_size(merged), MAX_HEADERS_BYTES, _(" as JSON, with the job's own"))
        return problems
    if field == "body":
        return body_problems(value)
    if field == "handler_kwargs":
        return _override_kwargs_problems(value, job)
    return []


def _override_kwargs_problems(kwargs: object, job: Job | None) -> list[str]:
    if not isinstance(kwargs, dict):
        return [_("Must be a JSON object.")]
    if job is None:
        return expression_problems(kwargs)
    merged = {**job.handler_kwargs, **kwargs}
    bounds = kwargs_bound_problems(merged)
    if bounds:
        return [_("%(problem)s, with the job's own.") % {"problem": message.rstrip(".。")} for message in bounds]
    # A handler that no longer loads is the run's failure to record, not the request's.
    return [message for field, message in kwargs_problems(job.handler, merged) if field != "handler"]


def _is_latin1(value: str) -> bool:
    try:
        value.encode("latin-1")
    except UnicodeEncodeError:
        return False
    return True


def _check_bounds(job: Job) -> list[tuple[str, str]]:
    """Whatever the kind: the values are stored (and exported) all the same."""
    return [
        *(("handler_kwargs", message) for message in kwargs_bound_problems(job.handler_kwargs)),
        *(("headers", message) for message in header_bound_problems(job.headers)),
        *(("body", message) for message in body_bound_problems(job.body or "")),
    ]


def _check_text(job: Job) -> list[tuple[str, str]]:
    problems = []
    values = job.__dict__
    for name, attname in _field_names(job):
        value = values.get(attname) if attname in values else getattr(job, attname)
        if value is None or isinstance(value, int | float | datetime):
            continue  # no text in it (most of a job's fields): not walked
        if isinstance(value, str) and value.isascii() and "\x00" not in value:
            continue  # ASCII text: no surrogate in it, and no NUL
        if not value and type(value) in (dict, list):
            continue  # {} or []
        problem = text_problem(value)
        if problem:
            problems.append((name, problem))
    return problems


def _field_names(job: Job) -> list[tuple[str, str]]:
    """The name and attribute of each of ``job``'s concrete fields, in order."""
    names = _FIELD_NAMES.get(type(job))
    if names is None:
        names = _FIELD_NAMES[type(job)] = [(field.name, field.attname) for field in job._meta.concrete_fields]
    return names


_FIELD_NAMES: dict[type, list[tuple[str, str]]] = {}


def _check_trigger(job: Job) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    zone_problem = _zone_problem(job.timezone)
    if zone_problem:
        problems.append(("timezone", zone_problem))
    trigger_fields = {
        "cron": bool(job.cron),
        "interval_seconds": job.interval_seconds is not None,
        "run_at": job.run_at is not None,
    }
    expected = {"cron": "cron", "interval": "interval_seconds", "date": "run_at"}.get(job.trigger)
    for field, given in trigger_fields.items():
        if given and field != expected:
            problems.append(
                (
                    field,
                    _("Not used by a %(trigger)s trigger: give only one of cron, interval_seconds, run_at.")
                    % {"trigger": job.trigger},
                )
            )
    if expected and not trigger_fields[expected]:
        problems.append((expected, _("Required for a %(trigger)s trigger.") % {"trigger": job.trigger}))
    if job.trigger == "cron" and job.cron:
        problems += [("cron", message) for message in _cron_problems(job.cron)]
    # An int unless the field's own check (clean_fields) refused the value; that error is reported.
    if isinstance(job.interval_seconds, int) and job.interval_seconds < 1:
        problems.append(("interval_seconds", _("Must be at least 1 second.")))
    if not any(field == "cron" or field == "timezone" for field, _message in problems):
        problems += [("jitter_seconds", message) for message in _jitter_problems(job)]
    return problems


def _jitter_problems(job: Job) -> list[str]:
    """A jitter moves each fire by less than the time to the next one, so fires keep their order."""
    jitter = job.jitter_seconds
    if not isinstance(jitter, int) or jitter <= 0:
        return []
    if job.trigger not in ("cron", "interval"):
        message = _("Jitter moves the fires of cron and interval jobs; a %(trigger)s job has none to move: use 0.")
        return [message % {"trigger": job.trigger}]
    if job.trigger == "interval":
        if isinstance(job.interval_seconds, int) and jitter >= job.interval_seconds:
            message = _("Must be less than the interval (%(n)d s), or fires would overtake each other.")
            return [message % {"n": job.interval_seconds}]
        return []
    if not job.cron:
        return []
    zone = get_zone(job.timezone)
    gap = memoized("shortest_gap", (job.cron, zone), lambda: shortest_gap(job.cron, zone))
    if jitter >= gap:
        return [_("Must be less than the shortest time between two fires of the cron (%(n)d s).") % {"n": int(gap)}]
    return []


def _zone_problem(name: object) -> str | None:
    """Why ``name`` is no time zone, or None (memoized within a bulk call: ``jobs.memo``)."""
    if not isinstance(name, str):
        return _compute_zone_problem(name)
    return memoized("zone", name, lambda: _compute_zone_problem(name), translated=bool)


def _compute_zone_problem(name: Any) -> str | None:
    try:
        get_zone(name)
    except ValidationError as exc:
        return exc.messages[0]
    return None


def _cron_problems(expr: str) -> tuple[str, ...]:
    """What is wrong with the cron expression ``expr`` (memoized within a bulk call)."""
    return memoized("cron", expr, lambda: _compute_cron_problems(expr), translated=bool)


def _compute_cron_problems(expr: str) -> tuple[str, ...]:
    try:
        validate_cron(expr)
    except ValidationError as exc:
        return (exc.messages[0],)
    return tuple(_crontab_column_problems(expr))


def _crontab_column_problems(expr: str) -> list[str]:
    """Each cron field is stored in a CrontabSchedule column (``jobs.beat_sync``) of limited width:
    a valid but longer field was a DataError (a 500) on PostgreSQL; SQLite stores it silently."""
    fields = expr.split()
    if len(fields) == 6:
        fields = fields[1:]  # the seconds field has no column
    problems = []
    for (column, label), text in zip(CRONTAB_COLUMNS.items(), fields, strict=True):
        field = CrontabSchedule._meta.get_field(column)
        limit = field.max_length if isinstance(field, Field) else None
        if limit is not None and len(text) > limit:
            problems.append(
                _("The %(field)s field is %(n)d characters long; at most %(limit)d fit the schedule table.")
                % {"field": label, "n": len(text), "limit": limit}
            )
    return problems


def _check_kind(job: Job) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    if job.kind == "http":
        if not job.url:
            problems.append(("url", _("Required for an http job.")))
        else:
            problems += [("url", message) for message in _url_problems(job.url)]
        problems += [("headers", message) for message in header_problems(job.headers)]
        problems += [("body", message) for message in body_problems(job.body or "")]
    elif job.kind == "python":
        handler_ok = isinstance(job.handler, str) and HANDLER_PATTERN.fullmatch(job.handler) is not None
        if not job.handler:
            problems.append(("handler", _("Required for a python job.")))
        elif not handler_ok:
            problems.append(("handler", _("Use 'scripts:<name>' or 'package.module:function'.")))
        if not isinstance(job.handler_kwargs, dict):
            problems.append(("handler_kwargs", _("Must be a JSON object.")))
        elif handler_ok:
            problems += kwargs_problems(job.handler, job.handler_kwargs)
    elif job.kind == "shell":
        if not (job.command or "").strip():
            problems.append(("command", _("Required for a shell job.")))
        if not settings.CRONTASK_ALLOW_SHELL:
            problems.append(("kind", _("Shell jobs are disabled: set CRONTASK_ALLOW_SHELL=true to allow them.")))
    return problems


def _url_problems(url: str) -> tuple[str, ...]:
    """The URL's form, then the egress policy on its host. Within a bulk call the form is
    memoized by URL and the policy's decision by host (``jobs.memo``): the policy is read afresh
    by the next call, and it resolves no name (a run checks the addresses it connects to)."""
    try:
        memoized("url", url, lambda: _url_validator(url))
    except ValidationError:
        return (_("Enter a valid http:// or https:// URL."),)
    host = urlsplit(url).hostname
    return memoized("egress", host, lambda: tuple(_egress_problems(url)), translated=bool)


def _egress_problems(url: str) -> list[str]:
    """The egress policy on the URL's host as written: a denied address or name is refused now;
    a name is not resolved (its addresses are checked when a run connects)."""
    try:
        check_host(urlsplit(url).hostname)
    except EgressDenied as exc:
        return [str(exc)]
    return []
