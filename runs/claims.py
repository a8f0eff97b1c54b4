"""Claiming a run: the one delivery that runs a fire, a manual run or a retry, and whether it runs.

A run is claimed once, however often its message is delivered. Where the run is:
- a fire that beat recorded as a ``queued`` run (``scheduling.outbox``): the row with no ``worker`` yet
  is locked and taken;
- a fire from a message beat did not record (the stock DatabaseScheduler, an older beat): the
  run is inserted under the unique (job, scheduled_for, attempt), and a second delivery fails;
- a manual run or a retry (sent by its id): the queued row with no worker.

The job's rules are applied as it is claimed: a scheduled fire that starts
later than ``misfire_grace_seconds`` after its time, or whose job is paused, and with ``forbid``
any run that finds one of its job's runs going, is recorded ``skipped`` with the reason. A fire
not yet due (beat sends fires ahead) is claimed but stays ``queued``, held by its worker, until
``runs.execution`` starts it at its time. The rules themselves are ``runs.policies``.

A claim is one transaction, and a worker runs it again after a lost database connection
(``core.outage.retrying``). If the first commit did happen, the second attempt finds the run
claimed by this very delivery (the same worker process and message id) and takes it as its own,
so a lost acknowledgement neither drops the fire nor runs it twice.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import IntegrityError, connection, transaction
from django.db.models import Q

from jobs.models import Job
from jobs.secrets import mask_text
from runs import policies
from runs.accounting import job_complete_if_fired, job_record_fires, job_record_run
from runs.models import Run
from runs.watchers import run_ended

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Claimant:
    """Who claims: the worker process and the message being handled, at ``now``.

    ``again``: this is another attempt at the same claim, after a lost database connection.
    ``retrying``: the workers of earlier deliveries of this message that gave up claiming while
    the database was away (Celery delivers it again, ``runs.tasks``); one of them may have
    claimed the run after all.
    """

    worker: str
    celery_task_id: str
    now: datetime
    again: bool = False
    retrying: tuple[str, ...] = ()

    def owns(self, run: Run) -> bool:
        """Whether ``run`` was claimed by an earlier attempt of this very claim (its commit was lost
        in transit). Only then: a new delivery of the same message, even to this same process, is
        a duplicate like any other."""
        mine = (run.worker, run.celery_task_id) == (self.worker, self.celery_task_id)
        return self.again and bool(self.worker) and mine

    def takes_over(self, run: Run) -> bool:
        """Whether ``run`` was claimed, and left unrun, by a delivery of this message that gave up."""
        return (
            run.worker in self.retrying
            and run.celery_task_id == self.celery_task_id
            and run.status in (Run.Status.QUEUED, Run.Status.RUNNING)
        )


def claim_fire(*, job: Job, scheduled_for: datetime, attempt: int, by: Claimant) -> Run | None:
    """Claim one fire of ``job``; None if another delivery has it."""
    with transaction.atomic():
        recorded = Run.objects.select_for_update().filter(job=job, scheduled_for=scheduled_for, attempt=attempt).first()
        if recorded is not None and not _unclaimed(recorded):
            return _taken(recorded, by)
        reason = _misfire(job, scheduled_for, by.now) or _paused(job) or _overlap(job)
        if recorded is None:
            return _insert_fire(job, scheduled_for, attempt, reason, by)
        _take(recorded, job, reason, by, ahead_of=scheduled_for)
    return recorded


def claim_fires(calls: Sequence[tuple[Job, datetime]], *, by: Claimant) -> list[Run]:
    """Claim first fires (attempt 1) of several jobs at once, under the rules of ``claim_fire``:
    one query locks the runs beat recorded, one UPDATE takes those that start alike (all of them,
    as a rule), one INSERT makes any nobody recorded. Returns the runs this delivery claimed
    (held, running or skipped), in job order."""
    if not calls:
        return []
    calls = sorted(calls, key=lambda call: (call[0].pk, call[1]))  # rows locked in one order: no deadlock
    if len({job.pk for job, _ in calls}) < len(calls) or not connection.features.can_return_rows_from_bulk_insert:
        return [run for job, at in calls if (run := claim_fire(job=job, scheduled_for=at, attempt=1, by=by))]
    by_time: dict[datetime, list[str]] = defaultdict(list)
    for job, at in calls:
        by_time[at].append(job.pk)
    either = Q()
    for at, job_ids in by_time.items():
        either |= Q(scheduled_for=at, job_id__in=job_ids)
    with transaction.atomic():
        rows = Run.objects.select_for_update().filter(either, attempt=1).order_by("job_id", "scheduled_for")
        recorded = {(row[1], row[2]): row for row in rows.values_list(*_RECORDED)}
        busy = _overlaps([job for job, _ in calls])  # after the runs: locks are taken run, then job
        claimed, new = [], []
        alike: dict[tuple[tuple[str, Any], ...], list[Run]] = defaultdict(list)
        for job, at in calls:
            reason = _misfire(job, at, by.now) or _paused(job) or busy.get(job.pk, "")
            start = policies.claim_start(reason, now=by.now, fire=at)
            row = recorded.get((job.pk, at))
            if row is None:
                new.append(Run(**_new_fire(job, at, 1, by), **start))
            elif row[3] == Run.Status.QUEUED and not row[4]:
                pk, _, _, _, _, queued_at, sent_at, target = row
                run = Run(pk=pk, job=job, trigger=Run.Trigger.SCHEDULED, scheduled_for=at, attempt=1,
                          queued_at=queued_at, sent_at=sent_at, target=target or mask_text(job.target),
                          worker=by.worker, celery_task_id=by.celery_task_id, **start)  # fmt: skip
                alike[tuple(start.items())].append(run)
            elif (mine := _taken(Run.objects.get(pk=row[0]), by)) is not None:
                claimed.append(mine)
        for start_fields, runs in alike.items():
            Run.objects.filter(pk__in=[run.pk for run in runs]).update(
                worker=by.worker, celery_task_id=by.celery_task_id, **dict(start_fields)
            )
        taken = [run for runs in alike.values() for run in runs]
        if new:
            new = _insert_new(new)
            job_record_fires((run.job_id, run.scheduled_for) for run in new if run.scheduled_for is not None)
        for run in taken + new:
            if run.status == Run.Status.SKIPPED:
                _count_skipped(run, run.job, at=by.now)
    return sorted(claimed + taken + new, key=lambda run: (run.job_id, run.scheduled_for))


# What the batch claim reads of each run it locks.
_RECORDED = ("pk", "job_id", "scheduled_for", "status", "worker", "queued_at", "sent_at", "target")


def claim_queued(*, job: Job, run_id: int, by: Claimant) -> Run | None:
    """Claim a queued run by its id (a manual run, a retry, a fire beat sent again)."""
    with transaction.atomic():
        run = Run.objects.select_for_update().filter(pk=run_id, job=job).first()
        if run is None:
            logger.info("run %s of job %s no longer exists; message dropped", run_id, job.pk)
            return None
        if not _unclaimed(run):
            return _taken(run, by)
        if run.trigger == Run.Trigger.SCHEDULED and run.scheduled_for is not None:  # a fire sent again
            reason = _misfire(job, run.scheduled_for, by.now) or _paused(job) or _overlap(job)
            _take(run, job, reason, by, ahead_of=run.scheduled_for)
        else:
            _take(run, job, _overlap(job), by)
    return run


# The fields a claim writes.
_CLAIM_FIELDS = ["worker", "celery_task_id", "target", "status", "started_at", "finished_at", "duration_ms", "error"]


def _unclaimed(run: Run) -> bool:
    return run.status == Run.Status.QUEUED and not run.worker


def _taken(run: Run, by: Claimant) -> Run | None:
    """``run`` if it is this delivery's own (see ``Claimant``), else None: a duplicate. The run is
    locked: of two copies of a message that take a run over, the second finds it taken."""
    if by.owns(run):
        return run  # this delivery's own claim, whose commit reached the database after all
    if by.takes_over(run):
        logger.warning("run %s of job %s: taking over the claim an earlier delivery gave up", run.pk, run.job_id)
        run.worker = by.worker
        run.save(update_fields=["worker"])
        return run
    if run.status == Run.Status.CANCELLED and run.started_at is None:
        logger.info("run %s of job %s was cancelled before it started; message dropped", run.pk, run.job_id)
    elif run.trigger == Run.Trigger.SCHEDULED and run.scheduled_for is not None:
        logger.info("duplicate delivery of job %s fire %s ignored", run.job_id, run.scheduled_for.isoformat())
    else:
        logger.info("run %s of job %s was already claimed; duplicate delivery ignored", run.pk, run.job_id)
    return None


def _take(run: Run, job: Job, reason: str, by: Claimant, *, ahead_of: datetime | None = None) -> None:
    _set(run, job, reason, by, ahead_of=ahead_of)
    run.save(update_fields=_CLAIM_FIELDS)
    if run.status == Run.Status.SKIPPED:
        _count_skipped(run, job, at=by.now)


def _set(run: Run, job: Job, reason: str, by: Claimant, *, ahead_of: datetime | None) -> None:
    fields = {
        "worker": by.worker,
        "celery_task_id": by.celery_task_id,
        "target": mask_text(job.target),
        "started_at": None,
        "finished_at": None,
        "duration_ms": None,
        "error": "",
        **policies.claim_start(reason, now=by.now, fire=ahead_of),
    }
    for name, value in fields.items():
        setattr(run, name, value)


def _insert_fire(job: Job, scheduled_for: datetime, attempt: int, reason: str, by: Claimant) -> Run | None:
    """A fire no scheduler recorded: its run is made here. Call in the claim's transaction."""
    try:
        with transaction.atomic():
            start = policies.claim_start(reason, now=by.now, fire=scheduled_for)
            run = Run.objects.create(**_new_fire(job, scheduled_for, attempt, by), **start)
    except IntegrityError:
        logger.info("duplicate delivery of job %s fire %s attempt %s ignored", job.pk, scheduled_for, attempt)
        return None
    if attempt == 1:
        job_record_fires([(job.pk, scheduled_for)])
    if run.status == Run.Status.SKIPPED:
        _count_skipped(run, job, at=by.now)
    return run


def _insert_new(runs: list[Run]) -> list[Run]:
    """Insert fires no scheduler recorded, with one INSERT; if another delivery made some of them
    meanwhile (two copies of a message from an older beat), one by one, keeping those it did
    not. Call in the claim's transaction."""
    try:
        with transaction.atomic():
            return Run.objects.bulk_create(runs)
    except IntegrityError:
        pass
    inserted = []
    for run in runs:
        try:
            with transaction.atomic():
                run.save(force_insert=True)
        except IntegrityError:
            when = run.scheduled_for.isoformat() if run.scheduled_for else ""  # a fire's: always set
            logger.info("duplicate delivery of job %s fire %s ignored", run.job_id, when)
            continue
        inserted.append(run)
    return inserted


def _new_fire(job: Job, scheduled_for: datetime, attempt: int, by: Claimant) -> dict[str, Any]:
    return {
        "job": job,
        "trigger": Run.Trigger.SCHEDULED if attempt == 1 else Run.Trigger.RETRY,
        "scheduled_for": scheduled_for,
        "attempt": attempt,
        "queued_at": scheduled_for,
        "sent_at": scheduled_for,
        "target": mask_text(job.target),
        "worker": by.worker,
        "celery_task_id": by.celery_task_id,
    }


# The job's values the policies take.
def _misfire(job: Job, scheduled_for: datetime, now: datetime) -> str:
    return policies.misfire_reason(scheduled_for, now=now, grace_seconds=job.misfire_grace_seconds)


def _paused(job: Job) -> str:
    return policies.paused_reason(job.status)


def _overlap(job: Job) -> str:
    """The reason to skip a new run of ``job`` for the runs of it going, by its concurrency policy
    (``replace`` cancels them instead). Call in a transaction."""
    return _overlaps([job]).get(job.pk, "")


def _overlaps(jobs: Sequence[Job]) -> dict[str, str]:
    """For each job whose concurrency is limited (``forbid``, ``max_concurrent``) and has runs
    going, or claimed ahead of their fire and about to: the reason to skip its new run. (A
    ``replace`` job's new run is never skipped: it cancels the older ones once its claim is
    committed, ``runs.execution``, so that no claim writes another run's row under the job's
    lock.) Call in a transaction.

    The job rows are locked (in id order), so two fires starting at once see each other's claim:
    no two workers both start the run that one too many. Every claim locks its run first and the
    job then, as the reaper and a finishing run do, so that no two of them wait on each other. A
    queued run no worker has claimed (beat recorded it and its message is on its way) is not going.
    """
    limited = {
        job.pk: job for job in jobs if policies.skips_for_concurrency(job.concurrency_policy, job.max_concurrent)
    }
    if not limited:
        return {}
    ids = sorted(limited)
    list(Job.objects.select_for_update().filter(pk__in=ids).order_by("pk").values_list("pk", flat=True))
    rows = (
        Run.objects.filter(job_id__in=ids)
        .filter(
            Q(status=Run.Status.RUNNING) | (Q(status=Run.Status.QUEUED, trigger=Run.Trigger.SCHEDULED) & ~Q(worker=""))
        )
        .order_by("pk")
        .values_list("job_id", "pk")
    )
    going: dict[str, list[int]] = defaultdict(list)
    for job_id, pk in rows:
        going[job_id].append(pk)
    reasons: dict[str, str] = {}
    for job_id, pks in going.items():
        job = limited[job_id]
        reason = policies.concurrency_verdict(job.concurrency_policy, job.max_concurrent, pks)
        if reason:
            reasons[job_id] = reason
    return reasons


def _count_skipped(run: Run, job: Job, *, at: datetime) -> None:
    """A skipped run in the job's ``last_run_*`` (not counted as a run), skipped ``at`` (its
    ``started_at``, the claim's time), and told to the run's watchers (a misfire is late). In the
    claim's transaction."""
    logger.info(
        "run skipped run_id=%s job_id=%s reason=%s", run.pk, job.pk, run.error,
        extra={"run_id": run.pk, "job_id": job.pk, "status": run.status, "reason": run.error},
    )  # fmt: skip
    job_record_run(job_id=job.pk, status=run.status, started_at=at, counted=False)
    if run.trigger == Run.Trigger.SCHEDULED and job.trigger == Job.Trigger.DATE:
        job_complete_if_fired(job_id=job.pk)
    run_ended(run, job, final=True)
