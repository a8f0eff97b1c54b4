"""Alert rules: validating, saving and deleting them. One path for the API and the admin.

Every write clears the cached enabled rules (``alerts.selectors``) once it commits, and closes
the open incidents a rule no longer stands behind: when it is disabled or deleted, when its event
changes, and those of the jobs it stops watching. A closed incident sends no ``recovered``: the
rule that opened it no longer asks.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.db.models import Count, Q
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop

from alerts import selectors
from alerts.models import AlertRule, Channel, Incident
from jobs.models import Job
from jobs.tags import clean_tags, has_any_tag

FIELDS = ("name", "event", "threshold", "jobs", "tags", "channels", "remind_every_seconds", "enabled")
Event = AlertRule.Event
# What the threshold counts, per event; None: the event takes no threshold.
THRESHOLD_UNITS: dict[str, str | None] = {
    Event.FAILED: None,
    Event.RECOVERED: None,
    Event.CONSECUTIVE_FAILURES: gettext_noop("failed fires in a row"),
    Event.NO_SUCCESS: gettext_noop("seconds"),
    Event.SLOW: gettext_noop("milliseconds"),
    Event.LATE: gettext_noop("milliseconds"),
}
THRESHOLD_REQUIRED = frozenset({Event.CONSECUTIVE_FAILURES, Event.NO_SUCCESS})
# The largest threshold per event: beyond these a rule would never speak (a year of silence, ten
# thousand failures in a row, a day of slowness or lateness), and its queries could not be made.
MAX_THRESHOLD = {
    Event.CONSECUTIVE_FAILURES: 10_000,
    Event.NO_SUCCESS: 366 * 86_400,
    Event.SLOW: 86_400_000,
    Event.LATE: 86_400_000,
}
MIN_REMIND_SECONDS = 60
MAX_REMIND_SECONDS = 2**31 - 1  # the column is an integer
MAX_ID = 2**63 - 1  # a channel's id is a bigint: a larger one names no channel and is not looked up
MAX_JOBS = 10_000  # one query names them all; beyond this, a rule for every job is what is meant
MAX_NAMED = 20  # missing ids named in an error; the rest are counted


def rule_clean(data: Mapping[str, Any], *, stored: AlertRule | None = None) -> dict[str, Any]:
    """The rule's fields once ``data`` (all of them, or some for a change of ``stored``) is
    applied: ``jobs`` as a list of job ids, ``tags`` as a job's tags are (``jobs.tags``: lowercased,
    deduplicated), ``channels`` as a list of channel ids, every field checked. ValidationError keyed
    by field, with every problem at once."""
    fields: dict[str, Any] = _stored_fields(stored) if stored is not None else {"enabled": True, "jobs": [], "tags": []}
    fields |= {name: value for name, value in data.items() if name in FIELDS}
    problems: dict[str, str] = {}
    name = str(fields.get("name") or "").strip()
    if not name:
        problems["name"] = _("A rule needs a name.")
    event = fields.get("event")
    if event not in Event.values:
        problems["event"] = _("%(given)r is not one of %(values)s.") % {
            "given": event,
            "values": ", ".join(Event.values),
        }
    threshold, problem = _threshold(event, fields.get("threshold"))
    if problem:
        problems["threshold"] = problem
    remind, problem = _remind_every(fields.get("remind_every_seconds"))
    if problem:
        problems["remind_every_seconds"] = problem
    channels, problem = _channel_ids(fields.get("channels"))
    if problem:
        problems["channels"] = problem
    jobs, problem = _job_ids(fields.get("jobs"))
    if problem:
        problems["jobs"] = problem
    tags: list[str] = []
    try:
        tags = clean_tags([] if _empty(fields.get("tags")) else fields.get("tags"))
    except ValidationError as exc:
        problems["tags"] = " ".join(exc.messages)
    if problems:
        raise ValidationError(problems)
    return {
        "name": name,
        "event": event,
        "threshold": threshold,
        "jobs": jobs,
        "tags": tags,
        "channels": channels,
        "remind_every_seconds": remind,
        "enabled": bool(fields.get("enabled", True)),
    }


def _stored_fields(rule: AlertRule) -> dict[str, Any]:
    return {
        **{name: getattr(rule, name) for name in FIELDS if name not in ("jobs", "channels")},
        "jobs": list(rule.jobs.through.objects.filter(alertrule=rule).values_list("job_id", flat=True)),
        "channels": list(rule.channels.through.objects.filter(alertrule=rule).values_list("channel_id", flat=True)),
    }


def _whole(value: Any) -> int | None:
    """``value`` as a whole number (an int, or a string of digits from a form), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit() and len(value.strip()) <= 30:
        return int(value)
    return None


def _empty(value: Any) -> bool:
    return value is None or value == ""


def _threshold(event: Any, value: Any) -> tuple[int | None, str | None]:
    if event not in Event.values:
        return None, None  # the event's own error says it; what a threshold means depends on it
    unit = THRESHOLD_UNITS[event]
    if unit is None:
        return None, None if _empty(value) else _("Not used by %(event)s: leave it empty.") % {"event": event}
    if _empty(value):
        if event in THRESHOLD_REQUIRED:
            return None, _("%(event)s needs a threshold (%(unit)s).") % {"event": event, "unit": _(unit)}
        return None, None
    number, most = _whole(value), MAX_THRESHOLD[event]
    if number is None or not 1 <= number <= most:
        return None, _("Give a whole number of %(unit)s from 1 to %(most)d.") % {"unit": _(unit), "most": most}
    return number, None


def _remind_every(value: Any) -> tuple[int | None, str | None]:
    if _empty(value):
        return None, None
    number = _whole(value)
    if number is None or not MIN_REMIND_SECONDS <= number <= MAX_REMIND_SECONDS:
        message = _("Give at least %(least)d seconds (at most %(most)d), or leave it empty.")
        return None, message % {"least": MIN_REMIND_SECONDS, "most": MAX_REMIND_SECONDS}
    return number, None


def _ids(value: Any) -> list[Any] | None:
    """A list of ids from ids or model instances (the admin's forms give instances), else None."""
    if _empty(value):
        return []
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Iterable):
        return None
    return list(dict.fromkeys(getattr(item, "pk", item) for item in value))  # deduplicated, in order


def _channel_ids(value: Any) -> tuple[list[int], str | None]:
    ids = _ids(value)
    if ids is None:
        return [], _("Give a list of channel ids.")
    if not ids:
        return [], _("A rule needs at least one channel.")
    numbers = [_whole(item) for item in ids]
    bad = [str(item) for item, number in zip(ids, numbers, strict=True) if number is None]
    if bad:
        return [], _("Not channel ids: %(ids)s.") % {"ids": _named(bad)}
    wanted = [number for number in numbers if number is not None]
    existing = set(Channel.objects.filter(pk__in=[n for n in wanted if 1 <= n <= MAX_ID]).values_list("pk", flat=True))
    missing = [str(number) for number in wanted if number not in existing]
    if missing:
        return [], _("No such channel: %(ids)s.") % {"ids": _named(missing)}
    return wanted, None


def _job_ids(value: Any) -> tuple[list[str], str | None]:
    ids = _ids(value)
    if ids is None:
        return [], _("Give a list of job ids (an empty list: every job).")
    if len(ids) > MAX_JOBS:
        return [], _("At most %(n)d jobs; a rule with no jobs watches every job.") % {"n": MAX_JOBS}
    wanted = [str(item) for item in ids]
    max_length = Job._meta.get_field("id").max_length or 0
    existing = set(Job.objects.filter(pk__in=[i for i in wanted if len(i) <= max_length]).values_list("pk", flat=True))
    missing = [job_id for job_id in wanted if job_id not in existing]
    if missing:
        return [], _("No such job: %(ids)s.") % {"ids": _named(missing)}
    return wanted, None


def _named(values: list[str]) -> str:
    more = len(values) - MAX_NAMED
    return ", ".join(value[:100] for value in values[:MAX_NAMED]) + (f" and {more} more" if more > 0 else "")


def rule_create(*, data: Mapping[str, Any]) -> AlertRule:
    fields = rule_clean(data)
    jobs, channels = fields.pop("jobs"), fields.pop("channels")
    with _named_rows_kept():
        rule = AlertRule.objects.create(**fields)
        rule.jobs.set(jobs)
        rule.channels.set(channels)
        transaction.on_commit(selectors.rules_changed)
    return rule


def rule_update(*, rule: AlertRule, data: Mapping[str, Any]) -> AlertRule:
    """Change ``rule`` by ``data``; the fields it does not name keep their stored values."""
    with _named_rows_kept():
        # Locked, so that two changes at once do not both read the jobs the rule watched before.
        stored = AlertRule.objects.select_for_update().get(pk=rule.pk)
        fields = rule_clean(data, stored=stored)
        jobs, channels = fields.pop("jobs"), fields.pop("channels")
        if not fields["enabled"] or fields["event"] != stored.event:
            _close_incidents(Q(rule=rule))
        elif jobs or fields["tags"]:  # it stops watching the jobs it no longer names or tags (neither: every job)
            still = ~Q(job_id__in=jobs)
            if fields["tags"]:
                still &= ~Q(job_id__in=Job.objects.filter(has_any_tag(fields["tags"])).values("pk"))
            _close_incidents(Q(rule=rule) & still)
        for name, value in fields.items():
            setattr(rule, name, value)
        rule.save()
        rule.jobs.set(jobs)
        rule.channels.set(channels)
        transaction.on_commit(selectors.rules_changed)
    return rule


@contextmanager
def _named_rows_kept() -> Iterator[None]:
    """A transaction that writes a rule's links to jobs and channels checked a moment before: one
    deleted meanwhile makes the commit fail (a foreign key), which is the user's to retry, not a 500."""
    try:
        with transaction.atomic():
            yield
            # Checked now rather than at the commit, which may be an outer transaction's.
            connection.check_constraints(
                table_names=[AlertRule.jobs.through._meta.db_table, AlertRule.channels.through._meta.db_table]
            )
    except IntegrityError as exc:
        raise ValidationError(
            {"jobs": _("A job or channel the rule names was deleted while it was saved; nothing was saved.")}
        ) from exc


def rule_delete(*, rule: AlertRule) -> None:
    with transaction.atomic():
        # Its incidents go with it (Incident.rule cascades); closed first, as a disabled rule's
        # are, so that none is left open should that cascade ever change.
        _close_incidents(Q(rule=rule))
        rule.delete()
        transaction.on_commit(selectors.rules_changed)


def job_rules_clean(*, job_id: str | None, attach: Iterable[int], detach: Iterable[int]) -> None:
    """Check a change to which rules name one job, made from the job's side (the job form). A rule
    that names no job and no tag watches every job, so neither may happen there unseen: naming this
    job in such a rule (it would then watch this job alone), or taking the last job from a rule
    without tags (it would then watch every job). ValidationError naming each such rule."""
    attach, detach = set(attach) - set(detach), set(detach) - set(attach)
    counts = (
        AlertRule.jobs.through.objects.filter(alertrule_id__in=attach | detach)
        .values("alertrule_id")
        .annotate(count=Count("id"))
    )
    named = {row["alertrule_id"]: row["count"] for row in counts}  # jobs each rule names now
    problems = []
    for rule in AlertRule.objects.filter(pk__in=attach | detach).order_by("id"):
        if rule.pk in attach and not named.get(rule.pk) and not rule.tags:
            problems.append(
                _(
                    "%(rule)r watches every job: naming this job would make it watch this one alone. "
                    "Change the rule itself to name its jobs."
                )
                % {"rule": rule.name}
            )
        elif rule.pk in detach and named.get(rule.pk) == 1 and job_id is not None and not rule.tags:
            problems.append(
                _(
                    "%(rule)r watches this job alone: taking it off would make it watch every job. "
                    "Disable or delete the rule instead."
                )
                % {"rule": rule.name}
            )
    if problems:
        raise ValidationError(problems)


def job_rules_saved(*, job_id: str, detached: Iterable[int]) -> None:
    """Rules were attached to or detached from one job by the job form: the incidents of the
    rules that no longer watch it are closed, and the cached rules are read again once that commits."""
    _close_incidents(Q(rule_id__in=list(detached), job_id=job_id))
    transaction.on_commit(selectors.rules_changed)


def _close_incidents(where: Q) -> int:
    return Incident.objects.filter(where, closed_at__isnull=True).update(closed_at=timezone.now())
