"""Incidents: a rule's problem with a job, opened with one alert, added to without another, closed
by recovery. A job failing 1,000 times in a row sends one alert (plus the reminders its rule asks
for), not 1,000.

Each function is called in a transaction (the run's, or the sweep's) and queues what it notifies
for after the commit (``alerts.delivery.notify``).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from alerts import delivery, messages
from alerts.models import AlertRule, Channel, Incident, Notification
from alerts.selectors import WatchingRule
from jobs.models import Job
from runs.models import Run

# The rules whose incidents a successful run closes, telling the channels with a ``recovered``.
# (A slow or late incident closes quietly on the next run that is neither.)
FAILURE_EVENTS = frozenset({AlertRule.Event.FAILED, AlertRule.Event.CONSECUTIVE_FAILURES, AlertRule.Event.NO_SUCCESS})


def incident_report(rule: WatchingRule, job: Job, run: Run | None, *, now: datetime, detail: str) -> Incident | None:
    """``rule`` saw its problem with ``job`` (in ``run``, or in a check no run made): the first
    time, an incident is opened and the rule's channels are told; while it is open, it is only
    counted. None if the rule is gone or disabled since it was cached."""
    incident = _open_incident(rule.id, job).first()
    if incident is None:
        if not _rule_stands(rule.id):
            return None
        try:
            with transaction.atomic():
                incident = Incident.objects.create(
                    rule_id=rule.id, job=job, event=rule.event, first_run=run, last_run=run,
                    opened_at=now, last_notified_at=now,
                )  # fmt: skip
        except IntegrityError:  # another worker opened it meanwhile: this is one more occurrence
            incident = _open_incident(rule.id, job).get()
        else:
            text = messages.build_message(rule.event, job=job, run=run, incident=incident, detail=detail)
            for channel_id in live_channels(rule.channel_ids):
                delivery.notify(channel_id, rule.event, text, job=job, run=run, rule=rule.id, incident=incident)
            return incident
    incident.occurrences += 1
    incident.last_run = run or incident.last_run
    incident.save(update_fields=["occurrences", "last_run"])
    return incident


def incidents_settle(
    job: Job, run: Run, *, now: datetime, fine: set[int], success: bool, recovered_rules: list[WatchingRule]
) -> None:
    """Close ``job``'s open incidents that ``run`` settles, read with one query: those of the rules
    in ``fine`` (a run neither slow nor late) quietly; and, when ``run`` succeeded, its failure
    incidents, telling the channels they alerted (and those of the ``recovered`` rules watching
    the job) once each."""
    open_incidents = list(Incident.objects.select_for_update().filter(job=job, closed_at__isnull=True))
    quiet = [incident for incident in open_incidents if incident.rule_id in fine]
    recovering = [incident for incident in open_incidents if success and incident.event in FAILURE_EVENTS]
    if quiet or recovering:
        Incident.objects.filter(pk__in=[incident.pk for incident in quiet + recovering]).update(closed_at=now)
    if recovering:
        _tell_recovery(job, run, recovering, now=now, recovered_rules=recovered_rules)


def _tell_recovery(
    job: Job, run: Run, closed: list[Incident], *, now: datetime, recovered_rules: list[WatchingRule]
) -> None:
    alerted = Notification.objects.filter(incident__in=closed).exclude(event=Notification.Event.RECOVERED)
    channels: dict[int, int | None] = {}  # channel -> the rule it is told for
    for channel_id, rule_id in alerted.values_list("channel_id", "incident__rule_id").order_by("id"):
        channels.setdefault(channel_id, rule_id)
    for rule in recovered_rules:
        for channel_id in rule.channel_ids:
            channels.setdefault(channel_id, rule.id)
    live = set(live_channels(channels))
    first = min(closed, key=lambda incident: incident.opened_at)
    first.closed_at = now
    seen = max(incident.occurrences for incident in closed)
    detail = ngettext(
        "Succeeded again %(since)s after the first alert (the problem was seen %(count)s time).",
        "Succeeded again %(since)s after the first alert (the problem was seen %(count)s times).",
        seen,
    ) % {"since": _since(first.opened_at, now), "count": seen}
    text = messages.build_message(AlertRule.Event.RECOVERED, job=job, run=run, incident=first, detail=detail)
    for channel_id, telling_rule in channels.items():
        if channel_id not in live:
            continue
        delivery.notify(
            channel_id, AlertRule.Event.RECOVERED, text, job=job, run=run, rule=telling_rule, incident=first
        )


def live_channels(channel_ids: Iterable[int]) -> list[int]:
    """Those of ``channel_ids`` that still exist (the rules are cached for a few seconds), locked
    against deletion until the transaction ends: a notification never names a deleted channel,
    which would fail the commit of the run that asked for it."""
    wanted = list(channel_ids)
    if not wanted:
        return []
    rows = Channel.objects.select_for_update(no_key=True).filter(pk__in=wanted).order_by("pk")
    return list(rows.values_list("pk", flat=True))


def _rule_stands(rule_id: int) -> bool:
    """Whether the rule still exists and is enabled, locked against deletion until the transaction
    ends (the cached rules may be a few seconds old)."""
    rule = AlertRule.objects.select_for_update(no_key=True).filter(pk=rule_id, enabled=True)
    return bool(rule.values_list("pk", flat=True)[:1])


def _open_incident(rule_id: int, job: Job) -> QuerySet[Incident]:
    return Incident.objects.select_for_update().filter(rule_id=rule_id, job=job, closed_at__isnull=True)


def _since(opened_at: datetime, now: datetime) -> str:
    seconds = max(0, int((now - opened_at).total_seconds()))
    if seconds < 120:
        return _("%(seconds)s s") % {"seconds": seconds}
    if seconds < 7200:
        return _("%(minutes)s min") % {"minutes": seconds // 60}
    return _("%(hours)s h %(minutes)s min") % {"hours": seconds // 3600, "minutes": seconds % 3600 // 60}


def incident_remind(incident: Incident, rule: WatchingRule, *, now: datetime) -> bool:
    """Tell ``rule``'s channels again that ``incident`` is still open, if no other process has
    since ``incident`` was read (a conditional update takes the reminder). True if it did."""
    taken = Incident.objects.filter(
        pk=incident.pk, closed_at__isnull=True, last_notified_at=incident.last_notified_at
    ).update(last_notified_at=now)
    if not taken:
        return False
    job, run = incident.job, incident.last_run
    text = messages.build_message(incident.event, job=job, run=run, incident=incident, reminder=True)
    for channel_id in live_channels(rule.channel_ids):
        delivery.notify(channel_id, incident.event, text, job=job, run=run, rule=rule.id, incident=incident)
    return True
