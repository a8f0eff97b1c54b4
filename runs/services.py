"""Running a job: claim the Run (``runs.claims``), execute, record how it ended.

Every run exists as a ``queued`` row before its message is sent (``scheduling.outbox``), and one
delivery claims it, so a message delivered twice, or fired by two schedulers, makes one run. A
run is finished by a conditional update too: only a run still ``running`` (or claimed ahead and
still ``queued``) takes its outcome, so a run the reaper marked ``lost`` stays lost and is
counted once.

The database may go away under a worker. The claim and the outcome are retried on a new
connection for a bounded time (``core.outage.retrying``): a call that was made is recorded
as it ended, never as failed or lost because its outcome could not be written at first, and a
retry is queued only when the call itself failed or never happened.

Beat sends a fire a little before its time (CRONTASK_FIRE_LEAD_MS). The worker claims it at
once, as a ``queued`` run, and the run turns ``running`` at the fire's time, when its job (or,
in a batch, its call) begins.
"""

from __future__ import annotations

import itertools
import logging
import os
import time
import traceback
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from datetime import datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

from celery import Task, current_app
from django.conf import settings
from django.db import DatabaseError, IntegrityError, transaction
from django.db.models import F, TextField, Value
from django.db.models.functions import Concat
from django.utils import timezone

from core.outage import DATABASE_DISCONNECTS, describe, retrying
from jobs.beat_sync import EXECUTE_TASK
from jobs.models import Job
from jobs.secrets import mask_json_values, mask_text, mask_values, restore_masked, secret_values
from jobs.services import check_shell_permission
from runs import claims, executors
from runs.accounting import job_complete_if_fired, job_record_run
from runs.claims import Claimant
from runs.executors.base import Outcome, Progress, json_safe, storable_text
from runs.models import Run

if TYPE_CHECKING:
    from jobs.services import Actor

logger = logging.getLogger(__name__)
T = TypeVar("T")

#: Seconds a worker keeps trying to claim a run while the database is unreachable. After that the
#: message is given back to Celery, which delivers it again (runs.tasks); beat would too.
CLAIM_RETRY_SECONDS = 10.0
#: Seconds a worker keeps trying to mark runs claimed ahead ``running`` (they run regardless).
START_RETRY_SECONDS = 2.0
#: How hard a request or a worker tries the broker before leaving a run for beat to send.
SEND_RETRY = {"max_retries": 1, "interval_start": 0.2, "interval_step": 0, "interval_max": 0.2}


def job_run_now(*, job: Job, overrides: Mapping[str, Any] | None = None, actor: Actor = None) -> Run:
    """Queue a manual run of the job, whatever its status, for a user (the API, the admin)."""
    check_shell_permission(actor, job.kind)
    # A mask among one-off values (copied from a run's masked overrides) stands for no value the
    # job keeps: refused, rather than sent as the header or kwarg.
    return run_enqueue_manual(job=job, overrides=restore_masked(dict(overrides or {}), None))


def run_enqueue_manual(*, job: Job, overrides: dict[str, Any]) -> Run:
    """Create a queued manual run and queue its execution once the transaction commits."""
    with transaction.atomic():
        run = _create_manual(job, overrides)
        _queue(job_id=job.pk, run_id=run.pk)
    return run


def run_in_foreground(*, job: Job, overrides: dict[str, Any] | None = None) -> Run:
    """Run the job now in this process (``manage.py run_job``), recorded like any manual run."""
    run = _create_manual(job, overrides or {}, sent=True)  # nothing to send: it runs here
    result = run_execute(job_id=job.pk, run_id=run.pk, worker="manage.py run_job")
    return result or Run.objects.get(pk=run.pk)


def _create_manual(job: Job, overrides: dict[str, Any], *, sent: bool = False) -> Run:
    now = timezone.now()
    return Run.objects.create(
        job=job,
        trigger=Run.Trigger.MANUAL,
        status=Run.Status.QUEUED,
        queued_at=now,
        sent_at=now if sent else None,
        target=mask_text(job.target),
        overrides=overrides,
    )


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
    # A message without a nominal time (e.g. from the stock DatabaseScheduler) is taken as a fire
    # at the current second.
    fire = scheduled_for or timezone.now().replace(microsecond=0)

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
    progress = RunProgress(run.pk, secrets=secret_values(job, run.overrides))
    execute = partial(executors.execute, job, overrides=run.overrides, progress=progress, identity=_identity(run))
    outcome = _guarded(job, run, execute)
    run.log_output = progress.text()
    return _finish(run, outcome, job=job)


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
    failure: Exception | None = None
    if to_run:
        with ThreadPoolExecutor(max_workers=len(to_run), thread_name_prefix="crontask-call") as pool:
            # The calls touch no database; the outcomes are stored here, on this thread's connection.
            ended = {pool.submit(_call_and_time, jobs[run.job_id], run): run for run in to_run}
            _start_queued(to_run)
            for future in as_completed(ended):
                run = ended[future]
                try:
                    # The run started when its call began: on a busy machine, a little after the claim.
                    run.started_at, outcome, finished = future.result()
                    _finish(run, outcome, job=jobs[run.job_id], finished=finished)
                except Exception as exc:  # one outcome that cannot be stored must not lose the others
                    logger.exception("could not finish run %s of job %s", run.pk, run.job_id)
                    failure = failure or exc
    # Jobs that changed kind since beat sent the fire: rare, so simply after the calls.
    for job_id, at in others:
        try:
            run = run_execute(
                job_id=job_id, scheduled_for=at, worker=worker, celery_task_id=celery_task_id, retrying_for=retrying_for
            )
        except Exception as exc:  # the same
            logger.exception("could not run job %s fire %s", job_id, at.isoformat())
            failure = failure or exc
            continue
        runs += [run] if run is not None else []
    if failure is not None:
        raise failure  # the task fails visibly; every other fire of the batch has been dealt with
    return runs


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
        return retrying(attempt, within=CLAIM_RETRY_SECONDS, what=f"claiming {what}")
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
        trace = _masked(traceback.format_exc(), secrets)
        logger.error("executor crashed on run %s of job %s:\n%s", run.pk, job.pk, trace)
        return Outcome(
            status=Run.Status.FAILED, error=_masked(f"{type(exc).__name__}: {exc}", secrets), traceback=trace
        )


def _call_and_time(job: Job, run: Run) -> tuple[datetime, Outcome, datetime]:
    """The call made ready, then, at the fire's time, made: when it began, its outcome, when it ended."""
    ahead = _time_until(run.scheduled_for)
    prepare = partial(
        executors.prepare, job, overrides=run.overrides, progress=Progress(), ahead=ahead, identity=_identity(run)
    )
    call = _guarded(job, run, prepare)
    _hold_until(run.scheduled_for)
    began = timezone.now()
    outcome = call if isinstance(call, Outcome) else _guarded(job, run, call)
    return began, outcome, timezone.now()


def _start_queued(runs: Sequence[Run]) -> None:
    """Mark ``running`` the runs claimed ahead of their fire, each group at its fire's time (when
    their calls begin, in their own threads). A batch's stored time is corrected to when each
    call began once its outcome is stored.

    A run changed meanwhile by someone else (the reaper) takes that status here and is not
    ours to run. If the database fails, the runs go on all the same, still ``queued``: their
    outcomes are stored as those of running runs, and the calls are not made twice."""
    waiting: dict[datetime, list[Run]] = defaultdict(list)
    for run in runs:
        if run.status == Run.Status.QUEUED:
            waiting[run.scheduled_for].append(run)
    for at in sorted(waiting):
        _hold_until(at)
        now = timezone.now()
        for run in waiting[at]:
            run.started_at = now
        pks = [run.pk for run in waiting[at]]
        try:
            statuses = retrying(
                partial(_mark_running, pks, now), within=START_RETRY_SECONDS, what=f"starting {len(pks)} run(s)"
            )
        except DatabaseError as exc:
            logger.warning("could not mark %d run(s) running: %s", len(pks), describe(exc))
            continue
        for run in waiting[at]:
            run.status = statuses.get(run.pk, run.status)


def _mark_running(pks: list[int], now: datetime) -> dict[int, str]:
    """Queued runs ``pks`` turn running; returns each run's status (one query more if any did not)."""
    marked = Run.objects.filter(pk__in=pks, status=Run.Status.QUEUED).update(status=Run.Status.RUNNING, started_at=now)
    if marked == len(pks):
        return dict.fromkeys(pks, Run.Status.RUNNING)
    return dict(Run.objects.filter(pk__in=pks).values_list("pk", "status"))


def _hold_until(when: datetime | None) -> None:
    """Wait for the time of a fire that beat sent ahead (CRONTASK_FIRE_LEAD_MS).

    One sleep, at most the lead and a second: a clock behind beat's cannot hold a worker long.
    """
    ahead = _time_until(when)
    if ahead > 0:
        time.sleep(ahead)


def _time_until(when: datetime | None) -> float:
    """Seconds a fire sent ahead is held: until ``when``, at most the lead and a second."""
    if when is None:
        return 0.0
    return max(0.0, min((when - timezone.now()).total_seconds(), settings.CRONTASK_FIRE_LEAD_MS / 1000 + 1.0))


def reap_lost_runs(*, now: datetime | None = None) -> int:
    """Mark ``lost`` the runs whose worker died: still ``running`` past their timeout plus a grace.

    Every executor ends its run by the job's timeout, so a run still ``running`` well after it
    was started by a worker that is gone. Runs queued for longer than
    CRONTASK_QUEUED_EXPIRY_SECONDS never reached a worker and are marked lost too, and so is a
    fire claimed ahead of its time still ``queued`` its timeout and a grace after that time: its
    worker died before the time came (a redelivery of the message finds the fire claimed). (Not
    sooner: a run whose start could not be stored runs on while ``queued``.)
    """
    now = now or timezone.now()
    grace = timedelta(seconds=settings.CRONTASK_LOST_GRACE_SECONDS)
    running = Run.objects.filter(status=Run.Status.RUNNING).values_list("pk", "started_at", "job__timeout_seconds")
    overdue = [pk for pk, started, limit in running if started + timedelta(seconds=limit) + grace < now]
    queued = Run.objects.filter(status=Run.Status.QUEUED)
    stale_before = now - timedelta(seconds=settings.CRONTASK_QUEUED_EXPIRY_SECONDS)
    stale = list(queued.filter(queued_at__lt=stale_before).values_list("pk", flat=True))
    # Claimed ahead of its fire (a worker holds it) and still queued past the fire's time plus its
    # timeout and the grace. A queued run no worker has claimed waits for its message: beat sends it.
    held = (
        queued.filter(trigger=Run.Trigger.SCHEDULED, scheduled_for__lt=now - grace)
        .exclude(worker="")
        .exclude(pk__in=stale)
        .values_list("pk", "scheduled_for", "job__timeout_seconds")
    )
    unstarted = [pk for pk, fire, limit in held if fire + timedelta(seconds=limit) + grace < now]
    reaped = 0
    for pk, was, reason in (
        [(pk, Run.Status.RUNNING, _LOST_RUNNING) for pk in overdue]
        + [(pk, Run.Status.QUEUED, _LOST_QUEUED) for pk in stale]
        + [(pk, Run.Status.QUEUED, _LOST_HELD) for pk in unstarted]
    ):
        with transaction.atomic():
            if not Run.objects.filter(pk=pk, status=was).update(status=Run.Status.LOST, finished_at=now, error=reason):
                continue  # it finished meanwhile
            run = Run.objects.select_related("job").get(pk=pk)
            if run.started_at is not None:
                run.duration_ms = _ms(run.started_at, now)
                run.save(update_fields=["duration_ms"])
            _record(run, run.job)
        reaped += 1
        logger.warning(
            "run lost run_id=%s job_id=%s was=%s", pk, run.job_id, was,
            extra={"run_id": pk, "job_id": run.job_id, "status": Run.Status.LOST},
        )  # fmt: skip
    return reaped


_LOST_RUNNING = "The worker running it stopped (killed or crashed) before it finished."
_LOST_QUEUED = "No worker picked it up in time."
_LOST_HELD = "The worker that took it ahead of its time stopped (killed or crashed) before that time came."


class RunProgress(Progress):
    """Collects the lines a job logs and writes them to the run about once a second."""

    FLUSH_EVERY = 1.0

    def __init__(self, run_id: int, *, secrets: Sequence[str] = ()) -> None:
        self.run_id = run_id
        self.secrets = secrets  # masked in each line, since the log is stored while the run goes on
        self.max_bytes = settings.CRONTASK_MAX_OUTPUT_BYTES
        self.lines: list[str] = []
        self.size = 0
        self.dropped = 0
        self.dirty = False
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

    def tick(self) -> None:
        if self.dirty and time.monotonic() - self.flushed_at >= self.FLUSH_EVERY:
            # Best effort: a failed write must not break the executor (which would leave its
            # child running); the whole log is stored with the outcome anyway.
            try:
                with transaction.atomic():
                    Run.objects.filter(pk=self.run_id).update(log_output=self.text())
            except DatabaseError as exc:
                logger.warning("could not save the log of run %s so far: %s", self.run_id, describe(exc))
            self.dirty = False
            self.flushed_at = time.monotonic()

    def text(self) -> str:
        text = "\n".join(self.lines)
        if self.dropped:
            text += f"\n[… truncated: {self.dropped} more bytes not kept]"
        return text


def _finish(run: Run, outcome: Outcome, *, job: Job, finished: datetime | None = None) -> Run:
    """Store the outcome on the run, fold it into the job's counters, and queue a retry if due.

    Only a run still ``running`` is finished. If the reaper marked it ``lost`` meanwhile (the
    worker was too slow to be believed alive), ``lost`` stands: it has been counted and may
    have a retry queued already, so the late outcome is only logged and noted on the run.

    A lost database connection does not change the outcome: it is stored again on a new one
    until the reaper's deadline for the run is near (``_store_deadline``); past that the error is
    raised and the run, still ``running``, is the reaper's. An outcome the database refuses as it
    is (a value it cannot hold) is recorded ``failed`` with the reason, so the run never stays
    ``running``, and is not retried: its call was made.
    """
    finished = finished or timezone.now()
    # The job's secret values are masked wherever the outcome quotes them, once, here: the API, the
    # admin, the Weizhi paths and the logs then only ever see masked text.
    secrets = secret_values(job, run.overrides)
    fields: dict[str, Any] = {
        "status": outcome.status,
        "started_at": run.started_at,
        "finished_at": finished,
        "duration_ms": _ms(run.started_at, finished),
        "status_code": outcome.status_code,
        "response_body": storable_text(mask_values(outcome.response_body, secrets)),
        "result": mask_json_values(json_safe(outcome.result), secrets),
        "exit_code": outcome.exit_code,
        "output": storable_text(mask_values(outcome.output, secrets)),
        "error": _masked(outcome.error, secrets),
        "traceback": _masked(outcome.traceback, secrets),
        "log_output": storable_text(mask_values(run.log_output, secrets)),
    }
    what = f"storing the outcome of run {run.pk}"
    try:
        ended = retrying(partial(_store_outcome, run, fields, job=job), within=_store_deadline(run, job), what=what)
    except DATABASE_DISCONNECTS:
        raise
    except DatabaseError as exc:
        # Only the first line: PostgreSQL's detail quotes the row, secrets and all.
        problem = _masked(describe(exc), secrets)
        logger.error("could not store the outcome of run %s (%s): %s", run.pk, outcome.status, problem)
        fields = {
            "status": Run.Status.FAILED,
            "started_at": run.started_at,
            "finished_at": finished,
            "duration_ms": fields["duration_ms"],
            "error": f"The run ended {outcome.status}, but its outcome could not be stored ({problem}).",
        }
        store = partial(_store_outcome, run, fields, job=job, retry=False)
        ended = retrying(store, within=_store_deadline(run, job), what=what)
        run.refresh_from_db()
    if not ended:
        _late_outcome(run, outcome, finished)
        run.refresh_from_db()
        return run
    logger.info(
        "run finished run_id=%s job_id=%s status=%s duration_ms=%s", run.pk, run.job_id, run.status, run.duration_ms,
        extra={"run_id": run.pk, "job_id": run.job_id, "status": run.status, "duration_ms": run.duration_ms},
    )  # fmt: skip
    return run


def _store_deadline(run: Run, job: Job) -> float:
    """Seconds left to store ``run``'s outcome before the reaper may take it for lost: it waits
    until the job's timeout and CRONTASK_LOST_GRACE_SECONDS have passed since the run started.
    A few seconds are kept in hand, since the reaper and this worker may not share a clock."""
    started = run.started_at or timezone.now()
    deadline = started + timedelta(seconds=job.timeout_seconds + settings.CRONTASK_LOST_GRACE_SECONDS)
    return max(0.0, (deadline - timezone.now()).total_seconds() - 5)


def _store_outcome(run: Run, fields: dict[str, Any], *, job: Job, retry: bool = True) -> bool:
    """End the run with ``fields`` if it is still running (or still ``queued``: claimed ahead, its
    start could not be stored), and record it; False if someone else ended it (the reaper).

    Safe to run again after a lost connection: if the first commit did happen, the run already
    holds this very outcome, and that counts as stored (once)."""
    with transaction.atomic():
        ending = Run.objects.filter(pk=run.pk, status__in=(Run.Status.RUNNING, Run.Status.QUEUED))
        if not ending.update(**fields):
            stored = Run.objects.filter(pk=run.pk, status=fields["status"], finished_at=fields["finished_at"])
            if not stored.exists():
                return False
            mine = True  # this very outcome, stored by an attempt whose answer was lost
        else:
            mine = False
        for name, value in fields.items():
            setattr(run, name, value)
        if not mine:
            _record(run, job, retry=retry)
    return True


def _late_outcome(run: Run, outcome: Outcome, finished: datetime) -> None:
    """The run was ended by someone else (the reaper) before its outcome came: keep theirs."""
    seconds = (finished - run.started_at).total_seconds()
    logger.warning(
        "late outcome ignored run_id=%s job_id=%s outcome=%s after %.1f s: the run was already ended",
        run.pk, run.job_id, outcome.status, seconds,
        extra={"run_id": run.pk, "job_id": run.job_id, "status": outcome.status},
    )  # fmt: skip
    note = f" It did end later ({outcome.status}, after {seconds:.1f} s); that outcome was not recorded."
    Run.objects.filter(pk=run.pk, status=Run.Status.LOST).update(
        error=Concat(F("error"), Value(note), output_field=TextField())
    )


def _masked(text: str, secrets: Sequence[str]) -> str:
    """A message (an error, a traceback): the job's secret values masked, and whatever else looks
    like a secret (a URL's password, ``token=…``), since a message is not data."""
    return storable_text(mask_text(mask_values(text, secrets)))


def _record(run: Run, job: Job, *, retry: bool = True) -> None:
    """Counters, one-off completion and the retry chain (unless ``retry`` is False: the call was
    made). Call in the transaction that ended the run."""
    job_record_run(job_id=job.pk, status=run.status, started_at=run.started_at or run.finished_at)
    if run.trigger != Run.Trigger.MANUAL and job.trigger == Job.Trigger.DATE:  # only one-offs complete
        job_complete_if_fired(job_id=job.pk)
    failed = run.status in (Run.Status.FAILED, Run.Status.TIMEOUT, Run.Status.LOST)
    if retry and failed and run.attempt <= job.max_retries:
        _queue_retry(run, job)


def _queue_retry(run: Run, job: Job) -> None:
    """Attempt n+1 of the same fire, after retry_backoff_seconds * 2**(n-1)."""
    delay = job.retry_backoff_seconds * 2 ** (run.attempt - 1)
    try:
        with transaction.atomic():
            retry = Run.objects.create(
                job=job,
                trigger=Run.Trigger.RETRY,
                scheduled_for=run.scheduled_for,
                attempt=run.attempt + 1,
                retry_of_id=run.retry_of_id or run.pk,
                status=Run.Status.QUEUED,
                queued_at=timezone.now() + timedelta(seconds=delay),
                target=run.target,
                overrides=run.overrides,
            )
    except IntegrityError:
        return  # this attempt is already queued
    _queue(job_id=job.pk, run_id=retry.pk, countdown=delay)


def _queue(*, job_id: str, run_id: int, countdown: float = 0) -> None:
    """Send the queued run's message once the transaction that created it commits.

    If the broker cannot take it, the run stays queued and unsent, and beat sends it when the
    broker is back (``scheduling.outbox``): the caller (a request, a finishing run) goes on unharmed.
    """

    def send() -> None:
        try:
            execute_job().apply_async(
                kwargs={"job_id": job_id, "run_id": run_id}, countdown=countdown or None, retry_policy=SEND_RETRY
            )
        except Exception as exc:  # noqa: BLE001 - whatever the transport raises, the run is safe
            logger.warning("run %s of job %s is queued; its message will be sent when the broker is back (%s)",
                           run_id, job_id, describe(exc))  # fmt: skip
            return
        try:
            mark_runs_sent([run_id], at=timezone.now())
        except DatabaseError as exc:  # beat then sends it once more; its claim takes it once
            logger.warning("could not note that run %s was sent: %s", run_id, describe(exc))

    transaction.on_commit(send)


def execute_job() -> Task:
    """The ``execute_job`` task, from the Celery app's registry by its name (``RunsConfig.ready``
    registers runs.tasks): runs.tasks calls this module, so this module does not import it. The
    task itself, not a message sent by name: its options and the app's (eager mode) apply."""
    return current_app.tasks[EXECUTE_TASK]


def mark_runs_sent(pks: Sequence[int], *, at: datetime) -> None:
    """Note that the runs' messages were handed to the broker (beat's outbox sends the others)."""
    if pks:
        Run.objects.filter(pk__in=pks).update(sent_at=at)


def _ms(start: datetime, end: datetime) -> int:
    return max(0, int((end - start).total_seconds() * 1000))
