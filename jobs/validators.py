"""The one validation path for a job: the API, the admin form and the import command all reach
it through ``Job.full_clean()``, so every entry point gives the same field-keyed errors."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import URLValidator

from jobs.handlers import check_kwargs
from jobs.triggers import get_zone, validate_cron

if TYPE_CHECKING:
    from jobs.models import Job

MAX_BODY_BYTES = 1024 * 1024
MAX_HEADERS = 100
HANDLER_PATTERN = re.compile(r"^(scripts:[A-Za-z_][A-Za-z0-9_]*|[A-Za-z_][A-Za-z0-9_.]*:[A-Za-z_][A-Za-z0-9_]*)$")
HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")

_url_validator = URLValidator(schemes=["http", "https"])


def validate_job(job: Job) -> None:
    errors: dict[str, list[str]] = {}
    for check in (_check_trigger, _check_kind):
        for field, message in check(job):
            errors.setdefault(field, []).append(message)
    if errors:
        raise ValidationError(errors)


def _check_trigger(job: Job) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    try:
        get_zone(job.timezone)
    except ValidationError as exc:
        problems.append(("timezone", exc.messages[0]))
    trigger_fields = {
        "cron": bool(job.cron),
        "interval_seconds": job.interval_seconds is not None,
        "run_at": job.run_at is not None,
    }
    expected = {"cron": "cron", "interval": "interval_seconds", "date": "run_at"}.get(job.trigger)
    for field, given in trigger_fields.items():
        if given and field != expected:
            problems.append(
                (field, f"Not used by a {job.trigger} trigger: give only one of cron, interval_seconds, run_at.")
            )
    if expected and not trigger_fields[expected]:
        problems.append((expected, f"Required for a {job.trigger} trigger."))
    if job.trigger == "cron" and job.cron:
        try:
            validate_cron(job.cron)
        except ValidationError as exc:
            problems.append(("cron", exc.messages[0]))
    if job.interval_seconds is not None and job.interval_seconds < 1:
        problems.append(("interval_seconds", "Must be at least 1 second."))
    return problems


def _check_kind(job: Job) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    if job.kind == "http":
        if not job.url:
            problems.append(("url", "Required for an http job."))
        else:
            try:
                _url_validator(job.url)
            except ValidationError:
                problems.append(("url", "Enter a valid http:// or https:// URL."))
        problems += [("headers", message) for message in _header_problems(job.headers)]
        if len(job.body.encode()) > MAX_BODY_BYTES:
            problems.append(("body", f"At most {MAX_BODY_BYTES} bytes."))
    elif job.kind == "python":
        if not job.handler:
            problems.append(("handler", "Required for a python job."))
        elif not HANDLER_PATTERN.match(job.handler):
            problems.append(("handler", "Use 'scripts:<name>' or 'package.module:function'."))
        if not isinstance(job.handler_kwargs, dict):
            problems.append(("handler_kwargs", "Must be a JSON object."))
        elif HANDLER_PATTERN.match(job.handler):
            problems += [_handler_problem(message) for message in check_kwargs(job.handler, job.handler_kwargs)]
    elif job.kind == "shell":
        if not job.command.strip():
            problems.append(("command", "Required for a shell job."))
        if not settings.CRONTASK_ALLOW_SHELL:
            problems.append(("kind", "Shell jobs are disabled: set CRONTASK_ALLOW_SHELL=true to allow them."))
    return problems


def _handler_problem(message: str) -> tuple[str, str]:
    """Problems with the handler itself go on ``handler``; with its arguments on ``handler_kwargs``."""
    field = "handler_kwargs" if message.startswith(("Argument", "Unknown argument", "Missing")) else "handler"
    return field, message


def _header_problems(headers: object) -> list[str]:
    if not isinstance(headers, dict):
        return ["Must be a JSON object of header names to string values."]
    if len(headers) > MAX_HEADERS:
        return [f"At most {MAX_HEADERS} headers."]
    problems = []
    for name, value in headers.items():
        if not HEADER_NAME.match(name):
            problems.append(f"{name!r} is not a valid header name.")
        elif not isinstance(value, str):
            problems.append(f"The value of {name!r} must be a string.")
        elif "\r" in value or "\n" in value or "\0" in value:
            problems.append(f"The value of {name!r} must not contain line breaks.")
    return problems
