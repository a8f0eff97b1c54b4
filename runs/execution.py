"""Running a job: claim the Run (``runs.claims``), execute it, hand its outcome to ``runs.outcomes``.

Every run exists as a ``queued`` row before its message is sent (``scheduling.outbox``), and one
delivery claims it, so a message delivered twice, or fired by two schedulers, makes one run.

The database may go away under a worker. The claim is made again on a new connection for a
bounded time (``core.outage.retrying``, ``policies.CLAIM_RETRY_SECONDS``); past that the message
is given back to Celery (``ClaimFailed``), and nothing has run.

Beat sends a fire a little before its time (CRONTASK_FIRE_LEAD_MS). The worker claims it at
once, as a ``queued`` run, and the run turns ``running`` at the fire's time, when its job (or,
in a batch, its call) begins.
"""

from __future__ import annotations

import codecs
import itertools
import logging
import os
import threading
import time
import traceback
from collections import defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, as_completed, wait
from datetime import datetime
from functools import partial
from typing import Any, TypeVar

from django.conf import settings
from django.db import DatabaseError, transaction
from django.db.models import Q, QuerySet
from django.utils import timezone
from django.utils.translation import gettext

from audit.services import audit_record
from core.outage import DATABASE_DISCONNECTS, describe, retrying
from core.per_process import PerProcess
from jobs.models import Job
from jobs.secrets import mask_values, secret_values
from runs import claims, executors, policies
from runs.cancellation import REPLACED_BY, cancel_runs, cancel_watch
from runs.claims import Claimant
from runs.enqueue import create_manual
from runs.executors.base import Outcome, OutputBuffer, Progress, cancelled_error, storable_text
from runs.models import Run
from runs.outcomes import finish, masked

logger = logging.getLogger(__name__)
T = TypeVar("T")


def run_in_foreground(*, job: Job, overrides: dict[str, Any] | None = None) -> Run:
    """Run the job now in this process (``manage.py run_job``), recorded like any manual run,
    and in the audit trail as a run now (``foreground``)."""
    with transaction.atomic():
        run = create_manual(job, overrides or {}, sent=True)  # nothing to send: it runs here
        audit_record(action="run_now", job_id=job.pk, run_id=run.pk, details={"foreground": True})
    result = run_execute(job_id=job.pk, run_id=run.pk, worker="manage.py run_job")
    return result or Run.objects.get(pk=run.pk)


def run_execute(
    *,
    job_id: str,
    scheduled_for: datetime | None = None,
    attempt: int = 1,
    run_id: int | None = None,
    worker: str = "",
    celery_task_id: str = "",
    retrying_for: Sequence[str] = (),
) -> Run | None:
    """Execute one delivery of a fire, or of a queued run. None if there was nothing ours to run.

    A fire sent ahead of its time (CRONTASK_FIRE_LEAD_MS) is claimed at once, as a ``queued``
    run, and started at its time: if this worker dies meanwhile, the reaper finds the run.
    ``retrying_for``: see ``ClaimFailed``.
    """
    worker = f"{worker} pid={os.getpid()}"
    fire = policies.fire_time(scheduled_for, now=timezone.now())

    def claim(by: Claimant) -> tuple[Job | None, Run | None]:
        job = Job.objects.filter(pk=job_id).first()
        if job is None:
            return None, None
        if run_id is not None:
            return job, claims.claim_queued(job=job, run_id=run_id, by=by)
        return job, claims.claim_fire(job=job, scheduled_for=fire, attempt=attempt, by=by)

    what = f"a run of job {job_id}"
    job, run = _claiming(claim, worker=worker, celery_task_id=celery_task_id, retrying_for=retrying_for, what=what)
    if job is None:
        logger.warning("job %s no longer exists; message dropped", job_id)
        return None
    if run is not None and run.status == Run.Status.QUEUED:
        _start_queued([run])
    if run is None or run.status not in (Run.Status.RUNNING, Run.Status.QUEUED):
        return run  # skipped, or taken from us (queued only if the database failed to mark it running)
    limited = policies.limits_concurrency(job.concurrency_policy, job.max_concurrent)
    if run.status == Run.Status.RUNNING and limited and not _begin_limited(job, run):
        # Cancelled before it began (a newer run of a ``replace`` job): it never starts.
        cancelled = Outcome(status="cancelled", error=cancelled_error(gettext("before it began.")))
        return finish(run, _who_cancelled(run, cancelled), job=job)
    progress = RunProgress(run.pk, secrets=secret_values(job, run.overrides))
    execute = partial(executors.execute, job, overrides=run.overrides, progress=progress, identity=_identity(run))
    with cancel_watch().watching(run.pk, progress.cancel):
        outcome = _guarded(job, run, execute)
    run.log_output = progress.text()
    return finish(run, _who_cancelled(run, outcome), job=job)


def run_execute_fires(
    *,
    fires: Sequence[tuple[str, datetime]],
    worker: str = "",
    celery_task_id: str = "",
    retrying_for: Sequence[str] = (),
) -> list[Run]:
    """Execute the fires of HTTP jobs that beat sent together: one claim for all of them, their
    calls made at once (a thread each), each outcome stored as soon as its call ends.

    Claims, policies and outcomes are those of ``run_execute``; only the cost is shared. Fires
    that arrive before their time are claimed at once as ``queued`` runs, and their threads are
    started and waiting, so at the fire's time nothing is left to do but the calls. A fire
    whose job is gone is dropped; one whose job is no longer an HTTP job runs on its own after
    the calls. Returns the runs this delivery claimed (running or skipped, then finished).
    """
    claimant = f"{worker} pid={os.getpid()}"

    def claim(by: Claimant) -> tuple[dict[str, Job], list[Run]]:
        jobs = Job.objects.in_bulk({job_id for job_id, _ in fires})
        calls = [(jobs[job_id], at) for job_id, at in fires if job_id in jobs and jobs[job_id].kind == Job.Kind.HTTP]
        return jobs, claims.claim_fires(calls, by=by)

    what = f"a batch of {len(fires)} fires"
    jobs, runs = _claiming(claim, worker=claimant, celery_task_id=celery_task_id, retrying_for=retrying_for, what=what)
    for job_id in sorted({job_id for job_id, _ in fires} - jobs.keys()):
        logger.warning("job %s no longer exists; its fire is dropped", job_id)
    others = [(job_id, at) for job_id, at in fires if job_id in jobs and jobs[job_id].kind != Job.Kind.HTTP]
    to_run = [run for run in runs if run.status in (Run.Status.RUNNING, Run.Status.QUEUED)]
    for run in to_run:  # their calls do not wait for the runs they replace: those are closed at once
        if jobs[run.job_id].concurrency_policy == Job.ConcurrencyPolicy.REPLACE:
            _replace_older(jobs[run.job_id], run)
    failure: Exception | None = None
    if to_run:
        # Each call waits until its run is marked running at its fire's time (a run cancelled while
        # held is not: its call is not made).
        begun = {run.pk: threading.Event() for run in to_run}
        # The calls touch no database; the outcomes are stored here, on this thread's connection.
        pool = call_threads()
        ended: dict[Future[tuple[datetime, Outcome | None, datetime]], Run] = {}
        try:
            for run in to_run:
                ended[pool.submit(_call_and_time, jobs[run.job_id], run, begun[run.pk])] = run
            _start_queued(to_run, on_marked=lambda run: begun[run.pk].set())
            for future in as_completed(ended):
                run = ended[future]
                try:
                    # The run started when its call began: on a busy machine, a little after the claim.
                    run.started_at, outcome, finished = future.result()
                    if outcome is None:
                        continue  # ended before its time (cancelled while held): nothing was called
                    finish(run, _who_cancelled(run, outcome), job=jobs[run.job_id], finished=finished)
                except Exception as exc:  # one outcome that cannot be stored must not lose the others
                    logger.exception("could not finish run %s of job %s", run.pk, run.job_id)
                    failure = failure or exc
        except BaseException:
            wait(ended)  # the calls end before this fails, as they did when each batch had its own threads
            raise
    # Jobs that changed kind since beat sent the fire: rare, so simply after the calls.
    for job_id, at in others:
        try:
            other = run_execute(
                job_id=job_id, scheduled_for=at, worker=worker, celery_task_id=celery_task_id, retrying_for=retrying_for
            )
        except Exception as exc:  # the same
            logger.exception("could not run job %s fire %s", job_id, at.isoformat())
            failure = failure or exc
            continue
        runs += [other] if other is not None else []
    if failure is not None:
        raise failure  # the task fails visibly; every other fire of the batch has been dealt with
    return runs


# The most calls a worker process makes at once (its batches' calls, all begun together, each
# waiting for its fire's time): never reached by a pool process, which runs one batch at a time.
CALL_THREADS = 1024


def call_threads() -> ThreadPoolExecutor:
    """The threads this process makes its batches' calls in, kept between batches: a thread whose
    call ended takes the next instead of a thread being started and ended for each call (about 50
    µs of CPU a call). It starts a thread only when none is idle, so a batch's calls never wait
    for each other. Made again in a forked child (the parent's threads are not there). A thread
    serves call after call: what a call runs must leave no state in its thread (thread-locals, an
    activated language, context variables); ``_call_and_time`` and the executors set none."""
    return _call_threads.get()


_call_threads = PerProcess(lambda: ThreadPoolExecutor(max_workers=CALL_THREADS, thread_name_prefix="crontask-call"))


def _identity(run: Run) -> dict[str, str]:
    """The headers that tell an HTTP target which run is calling: with them a target can tell a
    call it already had (the same run id) from a new one, and which fire a call stands for."""
    headers = {
        "X-Crontask-Job-Id": run.job_id,
        "X-Crontask-Run-Id": str(run.pk),
        "X-Crontask-Attempt": str(run.attempt),
    }
    if run.scheduled_for is not None:
        headers["X-Crontask-Scheduled-For"] = run.scheduled_for.isoformat()
    if run.upstream_run_id is not None:  # a workflow's run: the upstream run that fired it
        headers["X-Crontask-Upstream-Run-Id"] = str(run.upstream_run_id)
    return headers


class ClaimFailed(Exception):
    """The database stayed unreachable for CLAIM_RETRY_SECONDS while a delivery claimed its run:
    nothing was run, and the message should be delivered again (``runs.tasks`` retries it),
    telling the next delivery who ``claimant`` was, in case its claim did reach the database."""

    def __init__(self, message: str, claimant: str) -> None:
        super().__init__(message, claimant)  # both in args: Celery pickles the exception
        self.claimant = claimant

    def __str__(self) -> str:
        return str(self.args[0])


def _claiming(
    step: Callable[[Claimant], T], *, worker: str, celery_task_id: str, retrying_for: Sequence[str], what: str
) -> T:
    """``step(claimant)``: a claim, made again on a new connection if the database connection is
    lost, where a later attempt recognises the run an earlier one claimed (``Claimant.owns``), and
    a delivery retrying ``retrying_for`` takes over a run one of them claimed (``takes_over``)."""
    attempts = itertools.count()

    def attempt() -> T:
        again = next(attempts) > 0
        by = Claimant(worker, celery_task_id, timezone.now(), again=again, retrying=tuple(retrying_for))
        return step(by)

    try:
        return retrying(attempt, within=policies.CLAIM_RETRY_SECONDS, what=f"claiming {what}")
    except DATABASE_DISCONNECTS as exc:
        raise ClaimFailed(f"could not claim {what}: {describe(exc)}", worker) from exc


def _guarded(job: Job, run: Run, step: Callable[[], T]) -> T | Outcome:
    """``step``'s result (the executor's outcome, or a call made ready), or a ``failed`` outcome
    saying how the executor crashed."""
    try:
        return step()
    except Exception as exc:  # noqa: BLE001 - an executor bug must not leave the run "running"
        # Masked before it is logged: an exception's message may quote a header's value.
        secrets = secret_values(job, run.overrides)
        trace = masked(traceback.format_exc(), secrets)
        logger.error("executor crashed on run %s of job %s:\n%s", run.pk, job.pk, trace)
        return Outcome(status=Run.Status.FAILED, error=masked(f"{type(exc).__name__}: {exc}", secrets), traceback=trace)


def _call_and_time(job: Job, run: Run, begun: threading.Event) -> tuple[datetime, Outcome | None, datetime]:
    """The call made ready, then, at the fire's time, made: when it began, its outcome, when it
    ended. No outcome if the run did not begin (``begun`` says when its status is known)."""
    ahead = _hold_seconds(run.scheduled_for)
    progress = Progress()
    prepare = partial(
        executors.prepare, job, overrides=run.overrides, progress=progress, ahead=ahead, identity=_identity(run)
    )
    call = _guarded(job, run, prepare)
    _hold_until(run.scheduled_for)
    begun.wait(BEGIN_WAIT_SECONDS)
    if run.status not in (Run.Status.RUNNING, Run.Status.QUEUED):  # cancelled, or lost, while held
        return timezone.now(), None, timezone.now()
    began = timezone.now()
    with cancel_watch().watching(run.pk, progress.cancel):
        outcome = call if isinstance(call, Outcome) else _guarded(job, run, call)
    return began, outcome, timezone.now()


def _begin_limited(job: Job, run: Run) -> bool:
    """A run of a job whose concurrency is limited begins now. Under ``replace`` it first cancels
    the job's older runs still going (in a transaction of its own, after its claim: no run's row
    is written under the job's lock) and waits for them to end (within the cancel grace; one whose
    worker is gone is not waited for longer), so the two never overlap. Its ``started_at`` is then
    the time it really began, after the claim that counted the runs going. False if it was itself
    cancelled meanwhile (by a newer run): it does not begin."""
    if job.concurrency_policy == Job.ConcurrencyPolicy.REPLACE:
        ending = _replace_older(job, run)
        deadline = time.monotonic() + min(settings.CRONTASK_CANCEL_GRACE_SECONDS, REPLACE_WAIT_MAX_SECONDS) + 2.0
        while ending.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
    run.started_at = timezone.now()
    return bool(
        Run.objects.filter(pk=run.pk, status=Run.Status.RUNNING, cancelled_at__isnull=True).update(
            started_at=run.started_at
        )
    )


def _replace_older(job: Job, run: Run) -> QuerySet[Run]:
    """Cancel the runs of a ``replace`` job older than ``run`` that are going (in a transaction of
    their own); returns those still running, to wait for."""
    older = Run.objects.filter(job=job, pk__lt=run.pk).filter(
        Q(status=Run.Status.RUNNING) | (Q(status=Run.Status.QUEUED) & ~Q(worker=""))
    )
    with transaction.atomic():
        cancel_runs(list(older.values_list("pk", flat=True)), by=REPLACED_BY)
    return older.filter(status=Run.Status.RUNNING)


# The longest a ``replace`` run waits for the runs it cancelled to end, beyond 2 s: the cancel
# grace, up to this (a worker slot is not held for a 10-minute grace).
REPLACE_WAIT_MAX_SECONDS = 30.0


def _who_cancelled(run: Run, outcome: Outcome) -> Outcome:
    """A cancelled run's outcome, saying who cancelled it (the run's ``cancelled_by``)."""
    if outcome.status != Run.Status.CANCELLED:
        return outcome
    by = Run.objects.filter(pk=run.pk).values_list("cancelled_by", flat=True).first() or gettext("someone")
    reason = outcome.error.removeprefix(cancelled_error(""))
    outcome.error = gettext("Cancelled by %(by)s: %(reason)s") % {"by": by, "reason": reason}
    return outcome


# How long a held call waits for its run to be marked running before it goes on all the same.
BEGIN_WAIT_SECONDS = 5.0


def _start_queued(runs: Sequence[Run], *, on_marked: Callable[[Run], None] | None = None) -> None:
    """Mark ``running`` the runs claimed ahead of their fire, each group at its fire's time (when
    their calls begin, in their own threads). A batch's stored time is corrected to when each
    call began once its outcome is stored.

    A run changed meanwhile by someone else (the reaper) takes that status here and is not
    ours to run. If the database fails, the runs go on all the same, still ``queued``: their
    outcomes are stored as those of running runs, and the calls are not made twice."""
    waiting: dict[datetime, list[Run]] = defaultdict(list)
    for run in runs:
        if run.status == Run.Status.QUEUED and run.scheduled_for is not None:  # a fire's run has its time
            waiting[run.scheduled_for].append(run)
        elif on_marked is not None:
            on_marked(run)
    for at in sorted(waiting):
        _hold_until(at)
        now = timezone.now()
        for run in waiting[at]:
            run.started_at = now
        pks = [run.pk for run in waiting[at]]
        try:
            statuses = retrying(
                partial(_mark_running, pks, now),
                within=policies.START_RETRY_SECONDS,
                what=f"starting {len(pks)} run(s)",
            )
        except DatabaseError as exc:
            logger.warning("could not mark %d run(s) running: %s", len(pks), describe(exc))
            statuses = {}
        for run in waiting[at]:
            run.status = statuses.get(run.pk, run.status)
            if on_marked is not None:
                on_marked(run)


def _mark_running(pks: list[int], now: datetime) -> dict[int, str]:
    """Queued runs ``pks`` turn running; returns each run's status (one query more if any did not)."""
    marked = Run.objects.filter(pk__in=pks, status=Run.Status.QUEUED).update(status=Run.Status.RUNNING, started_at=now)
    if marked == len(pks):
        return dict.fromkeys(pks, Run.Status.RUNNING)
    return dict(Run.objects.filter(pk__in=pks).values_list("pk", "status"))


def _hold_until(when: datetime | None) -> None:
    """Wait for the time of a fire that beat sent ahead (CRONTASK_FIRE_LEAD_MS): one sleep, of
    ``policies.hold_seconds``."""
    ahead = _hold_seconds(when)
    if ahead > 0:
        time.sleep(ahead)


def _hold_seconds(when: datetime | None) -> float:
    return policies.hold_seconds(when, now=timezone.now(), lead_ms=settings.CRONTASK_FIRE_LEAD_MS)


# The statuses of a run whose log is still written as it goes (one the reaper ended is not).
GOING = (Run.Status.QUEUED, Run.Status.RUNNING)


class RunProgress(Progress):
    """Collects the lines a job logs, and a shell command's output, and writes them to the run
    about once a second (one UPDATE), so the run's page and ``GET /api/runs/{id}/log/`` follow it.

    While the run goes on, the stored text only grows (a reader follows it by offset): no
    truncation marker yet (the outcome adds it), a character split across chunks waits for its
    last byte, and output ending with the start of a secret waits for what follows, to be masked
    whole.
    """

    FLUSH_EVERY = 1.0

    def __init__(self, run_id: int, *, secrets: Sequence[str] = ()) -> None:
        super().__init__()
        self.run_id = run_id
        self.secrets = secrets  # masked in each line, since the log is stored while the run goes on
        self.max_bytes = settings.CRONTASK_MAX_OUTPUT_BYTES
        self.lines: list[str] = []
        self.size = 0
        self.dropped = 0
        self.dirty = False
        self.shell = OutputBuffer(self.max_bytes)
        self.shell_dirty = False
        self.flushed_at = time.monotonic()

    def log(self, line: str) -> None:
        line = storable_text(mask_values(line, self.secrets))
        encoded = len(line.encode()) + 1
        if self.size + encoded > self.max_bytes:
            self.dropped += encoded
        else:
            self.lines.append(line)
            self.size += encoded
            self.dirty = True
        self.tick()

    def output(self, data: bytes) -> None:
        if len(self.shell.kept) < self.max_bytes:  # past the limit nothing more is shown until the end
            self.shell_dirty = True
        self.shell.add(data)

    def tick(self) -> None:
        if (self.dirty or self.shell_dirty) and time.monotonic() - self.flushed_at >= self.FLUSH_EVERY:
            fields = {"log_output": "\n".join(self.lines)} if self.dirty else {}
            if self.shell_dirty:
                fields["output"] = self.output_so_far()
            # Best effort: a failed write must not break the executor (which would leave its
            # child running); the whole log is stored with the outcome anyway.
            try:
                with transaction.atomic():
                    Run.objects.filter(pk=self.run_id, status__in=GOING).update(**fields)
            except DatabaseError as exc:
                logger.warning("could not save the log of run %s so far: %s", self.run_id, describe(exc))
            self.dirty = self.shell_dirty = False
            self.flushed_at = time.monotonic()

    def text(self) -> str:
        text = "\n".join(self.lines)
        if self.dropped:
            text += "\n" + gettext("[… truncated: %(bytes)s more bytes not kept]") % {"bytes": self.dropped}
        return text

    def output_so_far(self) -> str:
        """The shell output kept so far, masked as a whole (a secret may span chunks), without a
        character or a secret's beginning that the next chunk may complete."""
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        text = storable_text(mask_values(decoder.decode(bytes(self.shell.kept)), self.secrets))
        held = max(
            (n for secret in self.secrets for n in range(1, len(secret)) if text.endswith(secret[:n])), default=0
        )
        return text[: len(text) - held]
