"""The decisions a run turns on, as pure functions: whether a claimed run starts, waits or is
skipped, how long a fire sent ahead is held, when a run counts as lost, how long its outcome may
be stored for, and whether and when it is retried.

Nothing here reads the database or the clock: the caller reads the time once and passes it as
``now``, with the job's values and the settings that apply. The modules that act on these
decisions (``runs.claims``, ``runs.execution``, ``runs.outcomes``, ``runs.reaper``,
``runs.enqueue``) do the reading and the writing.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.utils import translation
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from jobs.models import Job
from runs.models import Run

#: Seconds a worker keeps trying to claim a run while the database is unreachable. After that the
#: message is given back to Celery, which delivers it again (runs.tasks); beat would too.
CLAIM_RETRY_SECONDS = 10.0
#: Seconds a worker keeps trying to mark runs claimed ahead ``running`` (they run regardless).
START_RETRY_SECONDS = 2.0
#: How hard a request or a worker tries the broker before leaving a run for beat to send.
SEND_RETRY = {"max_retries": 1, "interval_start": 0.2, "interval_step": 0, "interval_max": 0.2}
#: Seconds kept in hand when storing an outcome before the reaper's deadline, since the reaper
#: and the worker may not share a clock.
STORE_MARGIN_SECONDS = 5.0
#: How a run ends that is retried while it has attempts left.
RETRIED = frozenset({Run.Status.FAILED, Run.Status.TIMEOUT, Run.Status.LOST})


# ---------------------------------------------------------------- claiming


def fire_time(scheduled_for: datetime | None, *, now: datetime) -> datetime:
    """The fire a delivery stands for: a message without a nominal time (e.g. from the stock
    DatabaseScheduler) is taken as a fire at the current second."""
    return scheduled_for or now.replace(microsecond=0)


MISFIRE = gettext_lazy("Misfire")


def misfire_reason(scheduled_for: datetime, *, now: datetime, grace_seconds: int | None) -> str:
    """The reason to skip a fire that starts more than its job's misfire grace after its time;
    "" if it may run (or the job has no grace: any delay is fine)."""
    if grace_seconds is None:
        return ""
    late = (now - scheduled_for).total_seconds()
    if late <= grace_seconds:
        return ""
    reason = _("started %(late)s s after its scheduled time; the grace is %(grace)s s.")
    return f"{MISFIRE}: " + reason % {"late": f"{late:.1f}", "grace": grace_seconds}


def skipped_by_misfire(status: str, error: str) -> bool:
    """Whether a run of this status and error was skipped for starting past its misfire grace."""
    return status == Run.Status.SKIPPED and error.startswith(_misfire_prefixes())


def _misfire_prefixes() -> tuple[str, ...]:
    """ "Misfire:" in each language Crontask speaks: the run's error was written in the language
    of the process that skipped it, which need not be this one's."""
    prefixes = []
    for code, _name in settings.LANGUAGES:
        with translation.override(code):
            prefixes.append(f"{MISFIRE}:")
    return tuple(prefixes)


def paused_reason(job_status: str) -> str:
    """The reason to skip a fire whose job was paused before it started; "" if it was not."""
    return _("The job was paused before this fire started.") if job_status == Job.Status.PAUSED else ""


def overlap_reason(going_run_id: int) -> str:
    """The reason to skip a run of a ``forbid`` job while its run ``going_run_id`` is going."""
    return _("Concurrency policy 'forbid': run %(run)s of this job was still running.") % {"run": going_run_id}


def concurrency_verdict(policy: str, max_concurrent: int | None, going: Sequence[int]) -> str:
    """The reason to skip a new run of a job whose runs ``going`` (ids, oldest first) are going;
    "" to start it (under ``replace`` always: it cancels them, ``runs.execution``)."""
    if not going:
        return ""
    if policy == Job.ConcurrencyPolicy.FORBID:
        return overlap_reason(going[-1])
    if policy == Job.ConcurrencyPolicy.ALLOW and max_concurrent is not None and len(going) >= max_concurrent:
        runs = ", ".join(str(pk) for pk in going[-3:]) + (" …" if len(going) > 3 else "")
        return _("max_concurrent %(max)s: %(count)s runs of this job were going (runs %(runs)s).") % {
            "max": max_concurrent,
            "count": len(going),
            "runs": runs,
        }
    return ""


def skips_for_concurrency(policy: str, max_concurrent: int | None) -> bool:
    """Whether a job's new run may be skipped for the runs going (and its claim must lock the job)."""
    return policy == Job.ConcurrencyPolicy.FORBID or (
        policy == Job.ConcurrencyPolicy.ALLOW and max_concurrent is not None
    )


def limits_concurrency(policy: str, max_concurrent: int | None) -> bool:
    """Whether a job's new runs must look at its going ones (and lock the job to do so)."""
    return policy != Job.ConcurrencyPolicy.ALLOW or max_concurrent is not None


def claim_start(reason: str, *, now: datetime, fire: datetime | None = None) -> dict[str, Any]:
    """The fields of a run as it is claimed at ``now``: skipped for ``reason`` if there is one,
    else ``running``, or still ``queued`` when claimed before its fire's time ``fire`` (its worker
    holds it, ``runs.execution``, and starts it then)."""
    if reason:
        return {"status": Run.Status.SKIPPED, "started_at": now, "finished_at": now, "duration_ms": 0, "error": reason}
    if fire is not None and fire > now:
        return {"status": Run.Status.QUEUED}
    return {"status": Run.Status.RUNNING, "started_at": now}


# ---------------------------------------------------------------- running


def hold_seconds(fire: datetime | None, *, now: datetime, lead_ms: int) -> float:
    """Seconds a worker holds a fire sent ahead (CRONTASK_FIRE_LEAD_MS) before it starts: until
    the fire's time, and at most the lead and a second, so that a worker's clock behind beat's
    (or a forged message) cannot hold it long. 0 for a run with no fire time."""
    if fire is None:
        return 0.0
    return max(0.0, min((fire - now).total_seconds(), lead_ms / 1000 + 1.0))


# ---------------------------------------------------------------- deadlines


def lost_deadline(started: datetime, *, timeout_seconds: float, grace_seconds: float) -> datetime:
    """When the reaper may take a run for lost: its job's timeout and the grace after it started
    (or, for a fire claimed ahead and still held, after the fire's time). Every executor ends its
    run by the timeout, so a run still going past this has a worker that is gone."""
    return started + timedelta(seconds=timeout_seconds) + timedelta(seconds=grace_seconds)


def is_lost(started: datetime, *, now: datetime, timeout_seconds: float, grace_seconds: float) -> bool:
    """Whether a run started (or held for a fire) at ``started`` is past its ``lost_deadline``."""
    return lost_deadline(started, timeout_seconds=timeout_seconds, grace_seconds=grace_seconds) < now


def queued_expired_before(*, now: datetime, expiry_seconds: float) -> datetime:
    """A run queued before this time never reached a worker (CRONTASK_QUEUED_EXPIRY_SECONDS)."""
    return now - timedelta(seconds=expiry_seconds)


def store_window(started: datetime | None, *, now: datetime, timeout_seconds: float, grace_seconds: float) -> float:
    """Seconds left, at ``now``, to store the outcome of a run started at ``started`` before the
    reaper may take it for lost (a few seconds kept in hand); never less than 0."""
    deadline = lost_deadline(started or now, timeout_seconds=timeout_seconds, grace_seconds=grace_seconds)
    return max(0.0, (deadline - now).total_seconds() - STORE_MARGIN_SECONDS)


# ---------------------------------------------------------------- retries


def should_retry(*, status: str, attempt: int, max_retries: int) -> bool:
    """Whether a run that ended ``status`` on ``attempt`` (1 for the first) is tried again: a run
    that failed, timed out or was lost, while its job allows another attempt."""
    return status in RETRIED and attempt <= max_retries


def retry_delay(*, attempt: int, backoff_seconds: float) -> float:
    """Seconds until attempt ``attempt`` + 1 of a fire: ``backoff_seconds * 2**(attempt - 1)``."""
    return backoff_seconds * 2 ** (attempt - 1)
