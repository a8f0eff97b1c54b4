"""Preparing a job from input: the one validation path of a job's definition.

``job_prepare`` turns what a client sends (the API's write serializer, the admin form, an import,
the Weizhi paths: each through the services, and the admin form from its own validation too) into
an unsaved Job that has passed every rule, with its derived fields set (name, status, next fire,
shown target). What it refuses it refuses with ValidationError keyed by field, as the API's 400
shows it; ShellNotPermitted (a 403) and JobAlreadyExists (a 409) are the other two refusals.

The rules, in the order they apply: the keys (unknown fields, ``trigger_args``), the id, the
trigger (inferred from the one trigger field given), masks sent back for stored secrets, the kind
(inferred from url, handler or command), the shell permission, the model's fields and constraints
with the job's rules (``jobs.validators.validate_job``: bounds, text, trigger, kind, the shape of
``after``, and the handler's signature, which imports the handler's code), the upstream jobs of
``after`` and the cycles it would make (``jobs.dependencies.check_after``), a run_at in the past, the status rules,
and, for a new job, whether its id is free.
"""

from __future__ import annotations

import copy
import functools
import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.core.exceptions import NON_FIELD_ERRORS, PermissionDenied, ValidationError
from django.db.models import CharField, Field, TextField
from django.db.models.expressions import DatabaseDefault
from django.utils import timezone
from django.utils.translation import gettext as _

from jobs.dependencies import check_after
from jobs.errors import SHELL_PERMISSION, JobAlreadyExists, ShellNotPermitted
from jobs.memo import memo_table, memoized
from jobs.models import CONSTRAINTS_IN_PYTHON, EDITABLE_FIELDS, RESERVED_JOB_IDS, Job
from jobs.secrets import mask_text, restore_masked
from jobs.tags import normalise_tags
from jobs.trigger_args import normalise_trigger_args
from jobs.validators import validate_job

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractUser, AnonymousUser

    #: Who asks for a write: a user (the API, the admin), or None for the system and operators
    #: (manage.py commands, beat), who are not checked.
    Actor = AbstractUser | AnonymousUser | None

# Input-only: APScheduler-style trigger_args (normalised away), and consent to run a date job
# whose run_at has already passed right away.
INPUT_ONLY_FIELDS: tuple[str, ...] = ("trigger_args", "run_if_past")
TRIGGER_FIELDS = {"cron": Job.Trigger.CRON, "interval_seconds": Job.Trigger.INTERVAL, "run_at": Job.Trigger.DATE}
KIND_FIELDS = {"url": Job.Kind.HTTP, "handler": Job.Kind.PYTHON, "command": Job.Kind.SHELL}


def job_prepare(
    *,
    data: Mapping[str, Any],
    instance: Job | None = None,
    actor: Actor = None,
    past_run_at_ok: bool = False,
    check_id: bool = True,
) -> Job:
    """The job ``data`` makes: a new one, or ``instance`` (the stored job; not changed) with
    ``data`` applied, as a partial update. Unsaved, and valid: saving it is all that is left.
    ``past_run_at_ok``: a new paused one-off may have a past ``run_at`` (a restore of a deleted
    job: resuming it asks for a new date, see ``resumed_status``). ``check_id=False``: a
    new job's id is not looked up (the caller's insert is the check: ``jobs.services``)."""
    if instance is None:
        return _prepare_new(data, actor, past_run_at_ok=past_run_at_ok, check_id=check_id)
    return _prepare_change(data, instance, actor)


# What a clone's changes replace as a whole, when they name any of it: a schedule (or a kind) of
# their own is not merged field by field with the source's, which would give two triggers (kinds).
_CLONE_GROUPS: tuple[tuple[frozenset[str], tuple[str, ...]], ...] = (
    (frozenset({*TRIGGER_FIELDS, "trigger", "trigger_args"}), ("trigger", *TRIGGER_FIELDS)),
    (frozenset({*KIND_FIELDS, "kind"}), ("kind", *KIND_FIELDS)),
)


def clone_data(*, source: Job, data: Mapping[str, Any]) -> dict[str, Any]:
    """The data of a new job that copies ``source``'s definition, with ``data``'s changes: its own
    id (required), and any other field a create takes. ``job_prepare`` checks it as any new job.

    The clone is paused unless ``data`` says otherwise: an active copy would fire alongside its
    source at once. Its name is the source's, unless that was only the source's id. Secrets are
    the source's stored values, read here, never what was shown: a ``MASK`` in ``data`` (the
    admin's pre-filled form, a GET's output) stands for the source's value in the same place.
    """
    changes = restore_masked(dict(data), source)
    if not changes.get("id"):
        raise ValidationError({"id": _("Give the copy an id of its own.")})
    base = cloned_fields(source)
    for given, replaced in _CLONE_GROUPS:
        if given & changes.keys():
            for name in replaced:
                base.pop(name, None)
    return {**base, **changes}


def cloned_fields(source: Job) -> dict[str, Any]:
    """What a clone of ``source`` copies before its changes: the editable fields but the id, with
    their stored (unmasked) values, the status paused, the name unless it was the source's id."""
    fields: dict[str, Any] = {name: getattr(source, name) for name in EDITABLE_FIELDS if name != "id"}
    fields["status"] = Job.Status.PAUSED
    if source.name == source.id:
        fields["name"] = ""  # defaulted from the source's id: the clone's defaults to its own
    return fields


def check_clone_permission(actor: Actor) -> None:
    """A clone carries its source's secrets (headers, body, kwargs) to wherever its own URL or
    command sends them: only someone who may change jobs (and so set those values) may clone."""
    if actor is not None and not actor.has_perm("jobs.change_job"):
        raise PermissionDenied(_("Cloning a job copies its secrets: it needs the permission to change jobs."))


def check_shell_permission(actor: Actor, *kinds: str) -> None:
    """Refuse a user without the shell permission anything that makes a shell job run or
    changes one: creating, changing (to or from shell), resuming or running it. Checked on the
    kind a job ends up with, after inference (``command`` alone makes a shell job), so what a
    client sends cannot dodge it. Pausing and deleting stop a job and need no more than the
    job permissions."""
    if actor is not None and Job.Kind.SHELL in kinds and not actor.has_perm(SHELL_PERMISSION):
        raise ShellNotPermitted()


def resumed_status(job: Job, now: datetime) -> str:
    """The status a paused job takes when resumed at ``now``.

    A one-off job whose ``run_at`` passed while it was paused is not run late: if beat fired it
    (``last_fired_at``, which beat sets as it claims a fire) it is completed, otherwise it needs a
    new ``run_at``.
    """
    if job.trigger != Job.Trigger.DATE or job.run_at is None or job.run_at > now:
        return Job.Status.ACTIVE
    if job.last_fired_at is not None and job.last_fired_at >= job.run_at:
        return Job.Status.COMPLETED
    raise ValidationError({"run_at": _("Passed while the job was paused: give it a new run_at to run it.")})


def first_fire(job: Job, now: datetime, *, run_if_past: bool = False) -> datetime | None:
    """When an active job fires first from ``now``. A one-off whose ``run_at`` has passed fires
    now only when the request said so (``run_if_past``); otherwise it has had its time."""
    if job.status != Job.Status.ACTIVE:
        return None
    first = job.schedule.first_fire(now)
    if job.trigger == Job.Trigger.DATE and first is not None and first <= now:
        return now if run_if_past else None
    return first


def _prepare_new(data: Mapping[str, Any], actor: Actor, *, past_run_at_ok: bool = False, check_id: bool = True) -> Job:
    fields = _check_keys(data)
    run_if_past = bool(fields.pop("run_if_past", False))
    if "id" in fields and not fields["id"]:
        del fields["id"]
    fields = _resolve_trigger(fields, current=None)
    fields = restore_masked(fields, None)  # a new job has no secret for a mask to stand for
    fields.setdefault("kind", _infer_kind(fields))
    check_shell_permission(actor, fields["kind"])
    job = Job(**fields)
    job.id = job.id or uuid.uuid4().hex[:12]
    if job.id in RESERVED_JOB_IDS:
        message = _("'%(id)s' is reserved: /api/jobs/%(id)s/ is the path of an action.")
        raise ValidationError({"id": message % {"id": job.id}})
    job.name = job.name or job.id
    if job.status not in (Job.Status.ACTIVE, Job.Status.PAUSED):
        raise ValidationError({"status": _("A new job is active or paused.")})
    # What the data did not set holds the field's default, whose check a bulk call makes once.
    _full_clean(job, given=frozenset({*fields, "id", "name"}))
    check_after(job)
    now = timezone.now()
    if not (past_run_at_ok and job.status == Job.Status.PAUSED):
        _check_run_at_future(job, now, run_if_past=run_if_past)
    if check_id:
        _check_id_free(job.id)
    job.next_run_at = first_fire(job, now, run_if_past=run_if_past)
    job.shown_target = mask_text(job.target)
    return job


def _prepare_change(data: Mapping[str, Any], stored: Job, actor: Actor) -> Job:
    """Changing a job or resuming it (status active) recomputes its next fire."""
    fields = _check_keys(data, job=stored)
    run_if_past = bool(fields.pop("run_if_past", False))
    if fields.get("id", stored.id) != stored.id:
        raise ValidationError({"id": _("The id of a job cannot be changed.")})
    fields.pop("id", None)
    fields = _resolve_trigger(fields, current=stored)
    check_shell_permission(actor, stored.kind, fields.get("kind", stored.kind))
    # Masked values sent back (a GET's output, the admin form, an export) keep the stored secrets.
    fields = restore_masked(fields, stored)
    job = copy.copy(stored)
    for name, value in fields.items():
        setattr(job, name, value)
    if job.status not in Job.Status.values:
        raise ValidationError({"status": _("Unknown status %(status)r.") % {"status": job.status}})
    job.name = job.name or job.id
    _full_clean(job)
    check_after(job, stored=stored)
    before = stored.schedule
    schedule_changed = job.schedule != before
    now = timezone.now()
    if schedule_changed and job.run_at != before.run_at:
        _check_run_at_future(job, now, run_if_past=run_if_past)
    if schedule_changed and job.status == Job.Status.COMPLETED:
        job.status = Job.Status.ACTIVE  # a finished one-off given a new date runs again
    if stored.status == Job.Status.COMPLETED and job.status != Job.Status.COMPLETED and not schedule_changed:
        raise ValidationError({"status": _("A completed one-off job runs again only when given a new run_at.")})
    if stored.status == Job.Status.PAUSED and job.status == Job.Status.ACTIVE and not schedule_changed:
        job.status = resumed_status(job, now)
    if schedule_changed or job.status != stored.status:
        job.next_run_at = first_fire(job, now, run_if_past=run_if_past and job.run_at != before.run_at)
    if job.status != Job.Status.PAUSED:  # resumed by an update: no longer paused until a time
        job.paused_until = job.paused_at = None
    job.shown_target = mask_text(job.target)
    return job


def _check_keys(data: Mapping[str, Any], *, job: Job | None = None) -> dict[str, Any]:
    unknown = sorted(set(data) - {*EDITABLE_FIELDS, *INPUT_ONLY_FIELDS})
    if unknown:
        raise ValidationError({name: _("Unknown field.") for name in unknown})
    # on an update, a naive run_date is read in the job's own zone unless the data names one
    fields = normalise_trigger_args(dict(data), default_timezone=job.timezone if job else None)
    if "tags" in fields:
        fields["tags"] = normalise_tags(fields["tags"])  # lowercased, deduplicated; validate_job checks the rest
    return fields


def _resolve_trigger(fields: dict[str, Any], *, current: Job | None) -> dict[str, Any]:
    """Infer ``trigger`` from the one trigger field given, and clear the others."""
    given = [name for name in TRIGGER_FIELDS if fields.get(name) not in (None, "")]
    explicit = fields.get("trigger")
    if len(given) > 1:
        message = _("Give only one of cron, interval_seconds, run_at; got %(given)s.")
        raise ValidationError({"trigger": message % {"given": ", ".join(given)}})
    if given:
        inferred = TRIGGER_FIELDS[given[0]]
        if explicit and explicit != inferred:
            message = _("%(field)s is given, so the trigger is %(inferred)s, not %(explicit)s.")
            raise ValidationError(
                {"trigger": message % {"field": given[0], "inferred": inferred, "explicit": explicit}}
            )
        trigger = inferred
    elif explicit:
        trigger = explicit
    elif current is not None:
        return fields  # the schedule is not being changed
    else:
        trigger = Job.Trigger.MANUAL
    if trigger not in Job.Trigger.values:
        raise ValidationError({"trigger": _("Unknown trigger %(trigger)r.") % {"trigger": trigger}})
    fields["trigger"] = trigger
    for name, owner in TRIGGER_FIELDS.items():
        if owner != trigger:
            fields[name] = "" if name == "cron" else None
    return fields


def _infer_kind(fields: Mapping[str, Any]) -> str:
    given = [kind for name, kind in KIND_FIELDS.items() if fields.get(name)]
    if len(given) > 1:
        raise ValidationError({"kind": _("Give kind: more than one of url, handler, command is set.")})
    return given[0] if given else Job.Kind.HTTP


def _full_clean(job: Job, *, given: frozenset[str] | None = None) -> None:
    if job.calendars is None:  # the admin form's empty field: no calendars
        job.calendars = []
    _full_clean_checked(job, given=given)


def _full_clean_checked(job: Job, *, given: frozenset[str] | None = None) -> None:
    """``Model.full_clean`` with the job's rules where ``Model.clean`` would be (the model's own
    ``clean`` imports no code), and no unique check (``_prepare_new`` checks the id): each field's
    checks, then the job's rules, then the constraints on the fields that passed both, read in
    Python (``CONSTRAINTS_IN_PYTHON``: no query)."""
    errors: dict[str, list[ValidationError]] = _clean_fields(job, given=given)
    try:
        validate_job(job)
    except ValidationError as exc:
        errors = exc.update_error_dict(errors)
    failed = {name for name in errors if name != NON_FIELD_ERRORS}
    for name, (fields, holds) in CONSTRAINTS_IN_PYTHON.items():
        if not fields & failed and holds(job) is False:  # as the database's CHECK: NULL passes
            errors.setdefault(NON_FIELD_ERRORS, []).append(
                ValidationError(_("Constraint “%(name)s” is violated.") % {"name": name}, code="constraint_violated")
            )
    if errors:
        raise ValidationError(errors)


# The values whose field checks a bulk call memoizes (``jobs.memo``): numbers, flags and choices,
# which most entries leave at their defaults, all together (one look-up an entry); and, one by one,
# the schedule's, which vary more (a shared zone, a cron many jobs have). Not the text each entry
# has its own of (id, name, url).
_SCHEDULE_FIELDS = frozenset({"timezone", "cron", "interval_seconds"})
_SHARED_TEXT_LENGTH = 200


def _clean_fields(job: Job, *, given: frozenset[str] | None = None) -> dict[str, list[ValidationError]]:
    """``Model.clean_fields``'s errors by field, each field cleaned as it does, in its order. Within
    a bulk call, a check of a shared value (above) is made once for all the entries with it; an
    error found is kept as its error list and given to each entry with that value. ``given``: the
    fields set on a new job (the others hold their defaults, whose checks a bulk call makes once:
    a default that failed its check would fail every entry's, as it does without the memo)."""
    errors: dict[str, list[ValidationError]] = {}
    values = job.__dict__
    grouped: list[tuple[int, type, Any]] = []
    plan = _clean_plan(type(job))
    defaults = memo_table("default_clean") if given is not None else None
    for index, (field, sharing) in enumerate(plan):
        if defaults is not None and field.name not in given:  # type: ignore[operator]
            clean = defaults.get(index)
            if clean is None:
                clean = defaults[index] = _default_clean(field, job)
            if clean:
                continue
        raw_value = values[field.attname] if field.attname in values else getattr(job, field.attname)
        if field.blank and raw_value in field.empty_values:
            continue
        if isinstance(raw_value, DatabaseDefault):
            continue
        kind = type(raw_value)  # part of a key: True == 1, and a choice's enum member is not its text
        shared = sharing is not None and (
            kind is bool
            or kind is int
            or (
                isinstance(raw_value, str)
                and (sharing == "own" or field.choices is not None)
                and len(raw_value) <= _SHARED_TEXT_LENGTH
            )
        )
        if shared and sharing == "group":
            grouped.append((index, kind, raw_value))
            continue
        if shared:
            outcome = memoized(
                "clean_field",
                (index, kind, raw_value),
                lambda f=field, v=raw_value: _clean_field(f, v, job),  # type: ignore[misc]
                translated=_refused,
            )
        else:
            outcome = _clean_field(field, raw_value, job)
        _apply(job, field, outcome, errors)
    if grouped:
        key = tuple(grouped)
        outcomes = memoized(
            "clean_fields",
            key,
            lambda: tuple(_clean_field(plan[index][0], raw, job) for index, _kind, raw in key),
            translated=_any_refused,
        )
        for (index, _kind, _raw), outcome in zip(grouped, outcomes, strict=True):
            _apply(job, plan[index][0], outcome, errors)
    if not errors:
        return errors
    return {field.name: errors[field.name] for field, _sharing in plan if field.name in errors}  # in field order


def _default_clean(field: Field, job: Job) -> bool:
    """Whether ``field``'s default passes its check unchanged (asked once a bulk call): then a
    field left at its default needs no check."""
    default = field.get_default()
    if field.is_relation or callable(default):
        return False
    raw = getattr(job, field.attname)
    if type(raw) is not type(default) or raw != default:
        return False  # not the default (a model that sets one in __init__): checked as given
    if field.blank and default in field.empty_values:
        return True
    ok, value = _clean_field(field, default, job)
    return ok and type(value) is type(default) and value == default


def _apply(job: Job, field: Field, outcome: tuple[bool, Any], errors: dict[str, list[ValidationError]]) -> None:
    ok, value = outcome
    if ok:
        setattr(job, field.attname, value)
    else:
        errors[field.name] = list(value)


def _refused(outcome: tuple[bool, Any]) -> bool:
    return not outcome[0]


def _any_refused(outcomes: tuple[tuple[bool, Any], ...]) -> bool:
    return not all(ok for ok, _value in outcomes)


@functools.cache
def _clean_plan(model: type[Job]) -> tuple[tuple[Field, str | None], ...]:
    """The fields ``clean_fields`` checks, in order, each with how a bulk call shares its check:
    ``"own"`` (a schedule field), ``"group"`` (numbers, flags, choices), or None (a relation's,
    which is a query; other text only an entry has: any text but a choice's)."""
    plan: list[tuple[Field, str | None]] = []
    for field in model._meta.fields:
        if field.generated:
            continue
        if field.is_relation:
            sharing = None
        elif field.name in _SCHEDULE_FIELDS:
            sharing = "own"
        elif field.choices or not isinstance(field, CharField | TextField):
            sharing = "group"  # its text (if any) is a choice's; or it takes no text: numbers, flags
        else:
            sharing = None
        plan.append((field, sharing))
    return tuple(plan)


def _clean_field(field: Field, raw_value: Any, job: Job) -> tuple[bool, Any]:
    try:
        return True, field.clean(raw_value, job)
    except ValidationError as exc:
        return False, exc.error_list


def _check_id_free(job_id: str) -> None:
    if Job.objects.filter(pk=job_id).exists():
        raise JobAlreadyExists(job_id)


def _check_run_at_future(job: Job, now: datetime, *, run_if_past: bool) -> None:
    if job.trigger == Job.Trigger.DATE and job.run_at is not None and job.run_at <= now and not run_if_past:
        raise ValidationError(
            {"run_at": _("Is in the past: give a future time, or send run_if_past: true to run the job now.")}
        )
