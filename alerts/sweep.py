"""What no single run tells, checked every CRONTASK_ALERT_SWEEP_SECONDS (``alerts.worker``, in
every worker and in beat; one of them sweeps each time):

- ``no_success`` rules: an active job with no successful run for ``threshold`` seconds opens an
  incident, even when nothing runs at all (beat stopped, every worker gone but one);
- reminders: an open incident whose rule has ``remind_every_seconds`` is told again that often;
- notifications whose message was lost are queued again (``alerts.delivery.requeue_lost``);
- the open incidents of a rule by tags whose job no longer has any of them (nor is named by it)
  are closed: a job's tags change through the job services, which know nothing of alerts.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone
from django.utils.translation import gettext as _

from alerts import delivery, incidents, messages
from alerts.models import AlertRule, Incident
from alerts.selectors import WatchingRule, load_enabled_rules
from jobs.models import Job
from jobs.tags import has_any_tag
from runs.models import Run

logger = logging.getLogger(__name__)

# The most incidents one sweep opens per rule, or reminders it sends: the next sweep goes on.
BATCH = 500


@dataclass(frozen=True)
class SweepReport:
    opened: int
    reminded: int
    requeued: int
    closed: int = 0


def sweep(*, now: datetime | None = None) -> SweepReport:
    """One pass of every check above, at ``now``, with the rules as they are now (not as cached)."""
    now = now or timezone.now()
    requeued = delivery.requeue_lost(now=now)  # first: what this sweep notifies is not lost
    rules = load_enabled_rules()
    opened = sum(check_no_success(rule, now=now) for rule in rules if rule.event == AlertRule.Event.NO_SUCCESS)
    reminded = send_reminders(rules, now=now)
    closed = close_unwatched(rules, now=now)
    return SweepReport(opened=opened, reminded=reminded, requeued=requeued, closed=closed)


def close_unwatched(rules: list[WatchingRule], *, now: datetime) -> int:
    """Close the open incidents of each rule with tags whose job it no longer watches (its tags
    changed). Quietly, as a rule's change closes them: the rule no longer asks about that job.
    One query per such rule, over its open incidents only."""
    closed = 0
    for rule in rules:
        if not rule.tags:
            continue
        unwatched = (
            Incident.objects.filter(rule_id=rule.id, closed_at__isnull=True)
            .exclude(job_id__in=list(rule.job_ids))
            .exclude(has_any_tag(rule.tags, field="job__tags"))
        )
        closed += unwatched.update(closed_at=now)
    return closed


def check_no_success(rule: WatchingRule, *, now: datetime) -> int:
    """Open an incident for each active job ``rule`` watches that has had no successful run for
    its threshold and has none open. The window starts no earlier than the job's last change
    (``updated_at``: its creation, a resume, an edit): a job just resumed after a long pause is
    given its threshold. A rule for every job leaves out the jobs that fire only once or by hand."""
    seconds = rule.threshold or 0
    cutoff = now - timedelta(seconds=seconds)
    succeeded = Run.objects.filter(job=OuterRef("pk"), status=Run.Status.SUCCESS, finished_at__gte=cutoff)
    already = Incident.objects.filter(rule_id=rule.id, job=OuterRef("pk"), closed_at__isnull=True)
    silent = Job.objects.filter(status=Job.Status.ACTIVE, is_system=False, updated_at__lt=cutoff)
    if rule.every_job:
        silent = silent.exclude(trigger__in=(Job.Trigger.DATE, Job.Trigger.MANUAL))
    else:  # the jobs it names or tags (a subquery: a join to the rules' links would repeat a job)
        named = AlertRule.jobs.through.objects.filter(alertrule_id=rule.id).values("job_id")
        silent = silent.filter(Q(pk__in=named) | has_any_tag(rule.tags))
    silent = silent.exclude(Exists(succeeded)).exclude(Exists(already)).order_by("pk")
    opened = 0
    for job_id in silent.values_list("pk", flat=True)[:BATCH]:
        with transaction.atomic():
            # The job locked, as a run's outcome locks it (runs.accounting): a success that
            # committed since the query above is seen, one still to come finds the incident.
            job = Job.objects.select_for_update().filter(pk=job_id, status=Job.Status.ACTIVE).first()
            if job is None or Run.objects.filter(job=job, status=Run.Status.SUCCESS, finished_at__gte=cutoff).exists():
                continue
            last = (
                Run.objects.filter(job=job, status=Run.Status.SUCCESS)
                .order_by("-finished_at")
                .values_list("finished_at", flat=True)
                .first()
            )
            since = (
                _("the last one ended %(at)s") % {"at": messages.local_time(last, job)}
                if last
                else _("it has never succeeded")
            )
            detail = _("No successful run for %(seconds)s s (%(since)s).") % {"seconds": seconds, "since": since}
            opened += incidents.incident_report(rule, job, None, now=now, detail=detail) is not None
    return opened


def send_reminders(rules: list[WatchingRule], *, now: datetime) -> int:
    """Remind the channels of each open incident whose rule asks for reminders and is due one."""
    reminding = {rule.id: rule for rule in rules if rule.remind_every_seconds}
    if not reminding:
        return 0
    sent = 0
    for rule in reminding.values():
        due = now - timedelta(seconds=rule.remind_every_seconds or 0)
        stale = (
            Incident.objects.filter(rule_id=rule.id, closed_at__isnull=True, last_notified_at__lte=due)
            .select_related("job", "last_run")
            .order_by("last_notified_at")
        )
        for incident in stale[:BATCH]:
            with transaction.atomic():
                sent += incidents.incident_remind(incident, rule, now=now)
    return sent
