"""What a run that ended means to the rules that watch its job (``run_ended``, which
``AlertsConfig.ready`` gives to ``runs.watchers``).

It runs in the transaction that stores the run's outcome, so an incident and its notifications
are committed with the outcome or not at all, and their delivery is queued after the commit
(``alerts.delivery``): a channel never fails, delays or retries a run. A job no enabled rule
watches costs no query (``alerts.selectors``).

The events a run decides (``no_success`` is the sweep's, ``alerts.sweep``):

- ``failed``: the fire's last attempt failed, timed out or was lost (not an attempt that is retried);
- ``consecutive_failures``: the last ``threshold`` fires of the job all failed (each by its last attempt);
- ``slow``: the run took longer than ``threshold`` ms, or, with no threshold, than 3 times the p95
  of the job's last 50 successful runs (once there are 10);
- ``late``: a scheduled fire started more than ``threshold`` ms after its time, or was skipped by misfire;
- a success closes the job's open ``failed``, ``consecutive_failures`` and ``no_success``
  incidents and tells the channels they alerted, and those of the ``recovered`` rules, once
  (``alerts.incidents.incidents_settle``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from alerts import incidents
from alerts.models import AlertRule
from alerts.selectors import WatchingRule, any_rule_may_watch, rules_watching
from jobs.models import Job
from runs.models import Run
from runs.policies import skipped_by_misfire

FAILURES = frozenset({Run.Status.FAILED, Run.Status.TIMEOUT, Run.Status.LOST})
# The slow rule with no threshold: more than SLOW_FACTOR times the p95 of the last SLOW_HISTORY
# successful runs, once there are SLOW_MIN_HISTORY of them.
SLOW_FACTOR = 3
SLOW_HISTORY = 50
SLOW_MIN_HISTORY = 10
Event = AlertRule.Event


def watched(job_id: str) -> bool:
    """Whether an enabled rule watches the job, or may by its tags (no query: the cached rules);
    ``run_ended`` weighs the job's tags."""
    return any_rule_may_watch(job_id)


@dataclass(frozen=True)
class Verdict:
    """What a rule makes of a run: its problem (with what it saw, in a sentence, and the run that
    shows it), or that the problem is gone (``FINE``: its incident, if open, closes quietly)."""

    problem: bool
    detail: str = ""
    run: Run | None = None


FINE = Verdict(problem=False)


def run_ended(run: Run, job: Job, final: bool) -> None:
    """Tell the rules watching ``job`` that ``run`` ended (``final``: no retry of its fire follows)."""
    rules = rules_watching(job.pk, tags=job.tags or ())
    if not rules:
        return
    now = timezone.now()
    failed = failed_fire(run, final=final)
    verdicts = [(rule, verdict) for rule in rules if (verdict := judge(rule, job, run, failed=failed)) is not None]
    for rule, verdict in verdicts:
        if verdict.problem:
            incidents.incident_report(rule, job, verdict.run or run, now=now, detail=verdict.detail)
    fine = {rule.id for rule, verdict in verdicts if not verdict.problem}
    if fine or run.status == Run.Status.SUCCESS:
        recovered = [rule for rule in rules if rule.event == Event.RECOVERED]
        incidents.incidents_settle(
            job, run, now=now, fine=fine, success=run.status == Run.Status.SUCCESS, recovered_rules=recovered
        )


def failed_fire(run: Run, *, final: bool) -> Run | None:
    """The attempt that failed the fire ``run`` ended, if it did: ``run`` itself when it was the
    last attempt and failed; the attempt before it when ``run`` is a retry that was skipped (its job
    paused, or still running under ``forbid``), since no other attempt follows. Else None."""
    if final and run.status in FAILURES:
        return run
    if run.trigger == Run.Trigger.RETRY and run.status == Run.Status.SKIPPED and run.retry_of_id is not None:
        first = run.retry_of_id
        previous = (
            Run.objects.filter(Q(pk=first) | Q(retry_of_id=first), job_id=run.job_id, attempt=run.attempt - 1)
            .only("id", "status", "attempt", "error", "job_id", "trigger", "scheduled_for", "started_at")
            .first()
        )
        if previous is not None and previous.status in FAILURES:
            return previous
    return None


def judge(rule: WatchingRule, job: Job, run: Run, *, failed: Run | None) -> Verdict | None:
    """What ``rule`` makes of ``run`` (``failed``: the attempt that failed its fire, if it did);
    None when it has nothing to say (no_success and recovered never speak of a run)."""
    if rule.event == Event.FAILED:
        if failed is not None:
            return Verdict(problem=True, detail=_failed_detail(failed, run), run=failed)
    elif rule.event == Event.CONSECUTIVE_FAILURES:
        threshold = rule.threshold or 1
        if failed is not None and consecutive_failures(job, up_to=threshold) >= threshold:
            detail = ngettext("%(count)s fire in a row failed.", "%(count)s fires in a row failed.", threshold) % {
                "count": threshold
            }
            return Verdict(problem=True, detail=detail, run=failed)
    elif rule.event == Event.SLOW:
        return _judge_slow(rule, job, run)
    elif rule.event == Event.LATE:
        return _judge_late(rule, run)
    return None


def consecutive_failures(job: Job, *, up_to: int) -> int:
    """How many of ``job``'s latest fires failed in a row (counting each fire by its latest attempt,
    manual runs as fires of their own), counted up to ``up_to``."""
    ended = (*FAILURES, Run.Status.SUCCESS)
    rows = (
        Run.objects.filter(job=job, status__in=ended)
        .order_by("-id")
        .values_list("id", "retry_of_id", "status")[: up_to * (job.max_retries + 1)]
    )
    seen: set[int] = set()
    failed = 0
    for pk, retry_of, status in rows:
        fire = retry_of or pk
        if fire in seen:
            continue  # an earlier attempt of a fire already counted by its latest
        seen.add(fire)
        if status == Run.Status.SUCCESS:
            break
        failed += 1
        if failed >= up_to:
            break
    return failed


def slow_limit_ms(job: Job, run: Run) -> int | None:
    """SLOW_FACTOR times the p95 of the job's last SLOW_HISTORY successful runs before ``run``;
    None while it has fewer than SLOW_MIN_HISTORY."""
    recent = (
        Run.objects.filter(job=job, status=Run.Status.SUCCESS, duration_ms__isnull=False)
        .exclude(pk=run.pk)
        .order_by("-id")
        .values_list("duration_ms", flat=True)[:SLOW_HISTORY]
    )
    durations = sorted(duration for duration in recent if duration is not None)
    if len(durations) < SLOW_MIN_HISTORY:
        return None
    p95 = durations[math.ceil(0.95 * len(durations)) - 1]  # the nearest rank
    return SLOW_FACTOR * max(p95, 1)


def _judge_slow(rule: WatchingRule, job: Job, run: Run) -> Verdict | None:
    if run.status not in (Run.Status.SUCCESS, Run.Status.FAILED) or run.duration_ms is None:
        return None  # a timeout is a failure, a skipped or lost run has no duration of its own
    limit = rule.threshold or slow_limit_ms(job, run)
    if limit is None:
        return None
    if run.duration_ms > limit:
        how = (
            _("%(limit)s ms") % {"limit": limit}
            if rule.threshold
            else _("%(limit)s ms (%(factor)s times the p95 of its recent runs)")
            % {"limit": limit, "factor": SLOW_FACTOR}
        )
        detail = _("The run took %(duration)s ms; the limit is %(limit)s.") % {
            "duration": run.duration_ms,
            "limit": how,
        }
        return Verdict(problem=True, detail=detail)
    return FINE if run.status == Run.Status.SUCCESS else None


def _judge_late(rule: WatchingRule, run: Run) -> Verdict | None:
    if run.trigger != Run.Trigger.SCHEDULED or run.attempt != 1 or run.scheduled_for is None:
        return None  # a manual run has no time to be late for; a retry waits on purpose
    if skipped_by_misfire(run.status, run.error):
        return Verdict(problem=True, detail=_("The fire was skipped: %(reason)s") % {"reason": run.error})
    if run.started_at is None or run.status == Run.Status.SKIPPED:
        return None
    late_ms = int((run.started_at - run.scheduled_for).total_seconds() * 1000)
    if rule.threshold and late_ms > rule.threshold:
        detail = _("The fire started %(late)s ms after its time; the limit is %(limit)s ms.")
        return Verdict(problem=True, detail=detail % {"late": late_ms, "limit": rule.threshold})
    return FINE


def _failed_detail(failed: Run, ended: Run) -> str:
    told = (
        _("The fire failed after %(attempts)s attempts.") % {"attempts": failed.attempt} if failed.attempt > 1 else ""
    )
    if ended is not failed:
        told = f"{told} {_('Its retry was skipped: %(reason)s') % {'reason': ended.error}}".strip()
    return told
