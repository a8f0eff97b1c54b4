"""Workflows at run time: a run that ends fires the jobs that run after its job (``Job.after``).

``fire_downstream`` is called by ``runs.outcomes.record`` in the transaction that ends a run,
when that was the fire's final attempt (no retry queued): each downstream job whose ``on``
matches the outcome gets a ``queued`` run with ``trigger=dependency`` and ``upstream_run`` set,
created in that same transaction and sent once it commits. So the upstream outcome and the runs
it fires are committed together or not at all.

Exactly once: the unique (job, upstream_run) of dependency runs is the claim. An outcome recorded
twice (a duplicate delivery, a retried store) finds the claim taken, and fires nothing more.

Outcomes: ``success`` matches a successful run; ``failure`` a run that failed, timed out or was
lost; ``finish`` any of those. A skipped or cancelled run never ran: it fires nothing.

A downstream job that is not active (paused, completed) does not fire, and nothing is kept for
it: with ``after_mode`` ``any`` the upstream runs that ended while it was paused are gone for it;
with ``all`` they still count once it is active again, if they ended since its last run and
within its window.

Calendars: a downstream job fired while one of its calendars' windows is on gets a ``skipped``
dependency run naming the window (with either ``blackout_policy``: ``defer`` moves scheduled
fires, it keeps no dependency run for later). It takes the claim like a queued one.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from django.db import DatabaseError, IntegrityError, transaction
from django.db.models import Exists, Max, OuterRef
from django.db.models.functions import Coalesce
from django.utils import timezone
from django.utils.translation import gettext as _

from calendars.selectors import calendar_windows
from calendars.windows import Blackout, blackout_at
from core.outage import DATABASE_DISCONNECTS, describe
from jobs.models import Job, JobDependency
from jobs.secrets import mask_text
from jobs.upstream_refs import has_refs, resolve_refs
from runs.enqueue import queue_run
from runs.models import Run

logger = logging.getLogger(__name__)

FAILURE = (Run.Status.FAILED, Run.Status.TIMEOUT, Run.Status.LOST)
MATCHES: dict[str, tuple[str, ...]] = {
    JobDependency.On.SUCCESS: (Run.Status.SUCCESS,),
    JobDependency.On.FAILURE: FAILURE,
    JobDependency.On.FINISH: (Run.Status.SUCCESS, *FAILURE),
}
ENDED = MATCHES[JobDependency.On.FINISH]


def fire_downstream(run: Run, job: Job) -> list[Run]:
    """Fire the jobs that run after ``job`` on ``run``'s outcome (its final attempt); returns the
    runs made. Call in the transaction that ended ``run``. One downstream job that cannot be fired
    (a database error in its savepoint) is logged and left; the others, and the outcome, go on."""
    if run.status not in ENDED:
        return []
    edges = JobDependency.objects.filter(upstream_id=job.pk).values_list("job_id", "on")
    wanted = sorted({downstream for downstream, on in edges if run.status in MATCHES[on]})
    if not wanted:
        return []
    fired = []
    for downstream in Job.objects.filter(pk__in=wanted, status=Job.Status.ACTIVE).order_by("pk"):
        try:
            made = _fire(downstream, run)
        except IntegrityError:
            continue  # this upstream run fired it already (the claim): a second delivery of the outcome
        except DatabaseError as exc:
            if isinstance(exc, DATABASE_DISCONNECTS):
                raise  # the outcome cannot be stored either (runs.outcomes retries it)
            logger.error("could not fire job %s after run %s: %s", downstream.pk, run.pk, describe(exc))
            continue
        if made is not None:
            fired.append(made)
    return fired


def _fire(downstream: Job, upstream: Run) -> Run | None:
    """The dependency run of ``downstream`` that ``upstream`` fires, queued on commit (or
    ``skipped``, not queued, in a blackout of its calendars); None if its ``all`` is not met
    yet. In a savepoint of its own: a claim already taken undoes only it."""
    with transaction.atomic():
        if downstream.after_mode == Job.AfterMode.ALL:
            # One finished upstream run at a time decides for this job: the next sees the run this
            # one made (or the outcome it waited for), whichever commits first.
            downstream = Job.objects.select_for_update().get(pk=downstream.pk)
            if downstream.status != Job.Status.ACTIVE or not all_met(downstream, upstream, now=timezone.now()):
                return None
        now = timezone.now()
        blackout = _blackout(downstream, now)
        if blackout is not None:
            reason = blackout.reason
            # Recorded, not sent: the row is the claim on (job, upstream run) all the same.
            return Run.objects.create(
                job=downstream, trigger=Run.Trigger.DEPENDENCY, upstream_run=upstream,
                status=Run.Status.SKIPPED, queued_at=now, started_at=now, finished_at=now, duration_ms=0,
                error=_("Blackout: %(reason)s; a dependency run in a blackout is skipped.") % {"reason": reason},
                target=mask_text(downstream.target),
            )  # fmt: skip
        made = Run.objects.create(
            job=downstream,
            trigger=Run.Trigger.DEPENDENCY,
            upstream_run=upstream,
            status=Run.Status.QUEUED,
            queued_at=now,
            target=mask_text(downstream.target),
            overrides=_overrides(downstream, upstream),
        )
    queue_run(job_id=downstream.pk, run_id=made.pk)
    logger.info(
        "dependency run queued run_id=%s job_id=%s upstream_run_id=%s", made.pk, downstream.pk, upstream.pk,
        extra={"run_id": made.pk, "job_id": downstream.pk, "upstream_run_id": upstream.pk},
    )  # fmt: skip
    return made


def _blackout(downstream: Job, now: datetime) -> Blackout | None:
    """The blackout window of ``downstream``'s calendars that ``now`` falls in, if any (the
    windows beat reads: ``calendars.selectors``). Either blackout policy: ``defer`` moves
    scheduled fires only, a dependency run is not kept for later."""
    ids = [pk for pk in downstream.calendars if isinstance(pk, int)] if isinstance(downstream.calendars, list) else []
    if not ids:
        return None
    by_calendar = calendar_windows(ids)
    windows = [spec for pk in ids for spec in by_calendar.get(pk, (None, []))[1]]
    return blackout_at(windows, now) if windows else None


def _overrides(downstream: Job, upstream: Run) -> dict[str, Any]:
    """A python job's ``$upstream`` references, resolved from ``upstream`` (``jobs.upstream_refs``),
    as the run's one-off ``handler_kwargs``: only the arguments that hold one."""
    if downstream.kind != Job.Kind.PYTHON or not isinstance(downstream.handler_kwargs, dict):
        return {}
    values = {"run_id": upstream.pk, "status": upstream.status, "job_id": upstream.job_id, "result": upstream.result}
    resolved = {
        name: resolve_refs(value, values) for name, value in downstream.handler_kwargs.items() if has_refs(value)
    }
    return {"handler_kwargs": resolved} if resolved else {}


def all_met(downstream: Job, upstream: Run, *, now: datetime) -> bool:
    """Whether every job ``downstream`` runs after has a final run with a matching outcome that
    ended since ``downstream``'s own last run (of any trigger) and within its window."""
    since = Run.objects.filter(job=downstream, attempt=1).aggregate(last=Max("queued_at"))["last"]
    if downstream.after_window_seconds is not None:
        start = now - timedelta(seconds=downstream.after_window_seconds)
        since = start if since is None else max(since, start)
    for edge in JobDependency.objects.filter(job=downstream):
        statuses = MATCHES[edge.on]
        if edge.upstream_id == upstream.job_id and upstream.status in statuses:
            continue  # the run ending now
        ended = Run.objects.filter(job_id=edge.upstream_id, status__in=statuses, finished_at__isnull=False)
        if since is not None:
            ended = ended.filter(finished_at__gt=since)
        if not ended.filter(~Exists(_later_attempts())).exists():
            return False
    return True


def _later_attempts() -> Any:
    """Attempts after an outer run of the same fire: a run that has one was not its fire's last."""
    return Run.objects.filter(
        retry_of_id=Coalesce(OuterRef("retry_of_id"), OuterRef("pk")), attempt__gt=OuterRef("attempt")
    )
