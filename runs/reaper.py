"""The reaper: runs whose worker died are marked ``lost``, counted, and retried if the job allows.

``runs.tasks.reap_lost_runs`` runs it, on beat's housekeeping schedule. A run it marks lost is
ended by a conditional update, as a finishing run is (``runs.outcomes``): whichever comes first
wins, and the other is told.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from runs import policies
from runs.models import Run
from runs.outcomes import elapsed_ms, record

logger = logging.getLogger(__name__)

# Stored on the run in the language of the process that reaps it (LANGUAGE_CODE): str() at use.
_LOST_RUNNING = gettext_lazy("The worker running it stopped (killed or crashed) before it finished.")
_LOST_QUEUED = gettext_lazy("No worker picked it up in time.")
_LOST_HELD = gettext_lazy(
    "The worker that took it ahead of its time stopped (killed or crashed) before that time came."
)


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
    grace_seconds = settings.CRONTASK_LOST_GRACE_SECONDS

    def lost(start: datetime, timeout_seconds: int) -> bool:
        return policies.is_lost(start, now=now, timeout_seconds=timeout_seconds, grace_seconds=grace_seconds)

    running = Run.objects.filter(status=Run.Status.RUNNING).values_list("pk", "started_at", "job__timeout_seconds")
    overdue = [pk for pk, started, limit in running if started is None or lost(started, limit)]
    queued = Run.objects.filter(status=Run.Status.QUEUED)
    stale_before = policies.queued_expired_before(now=now, expiry_seconds=settings.CRONTASK_QUEUED_EXPIRY_SECONDS)
    stale = list(queued.filter(queued_at__lt=stale_before).values_list("pk", flat=True))
    # Claimed ahead of its fire (a worker holds it) and still queued past the fire's time plus its
    # timeout and the grace. A queued run no worker has claimed waits for its message: beat sends it.
    held = (
        queued.filter(trigger=Run.Trigger.SCHEDULED, scheduled_for__lt=now - timedelta(seconds=grace_seconds))
        .exclude(worker="")
        .exclude(pk__in=stale)
        .values_list("pk", "scheduled_for", "job__timeout_seconds")
    )
    unstarted = [pk for pk, fire, limit in held if fire is not None and lost(fire, limit)]
    reaped = _end_unanswered_cancels(now)
    for pk, was, reason in (
        [(pk, Run.Status.RUNNING, _LOST_RUNNING) for pk in overdue]
        + [(pk, Run.Status.QUEUED, _LOST_QUEUED) for pk in stale]
        + [(pk, Run.Status.QUEUED, _LOST_HELD) for pk in unstarted]
    ):
        with transaction.atomic():
            if not Run.objects.filter(pk=pk, status=was).update(
                status=Run.Status.LOST, finished_at=now, error=str(reason)
            ):
                continue  # it finished meanwhile
            run = Run.objects.select_related("job").get(pk=pk)
            if run.started_at is not None:
                run.duration_ms = elapsed_ms(run.started_at, now)
                run.save(update_fields=["duration_ms"])
            record(run, run.job)
        reaped += 1
        logger.warning(
            "run lost run_id=%s job_id=%s was=%s", pk, run.job_id, was,
            extra={"run_id": pk, "job_id": run.job_id, "status": Run.Status.LOST},
        )  # fmt: skip
    return reaped


# Seconds past the cancel grace after which a cancel its worker did not answer is the reaper's.
CANCEL_ANSWER_SECONDS = 10


def _end_unanswered_cancels(now: datetime) -> int:
    """End ``cancelled`` the running runs asked to stop longer ago than the cancel grace and
    CANCEL_ANSWER_SECONDS: their worker is gone or stuck (a live one ends them within the grace)."""
    asked_before = now - timedelta(seconds=settings.CRONTASK_CANCEL_GRACE_SECONDS + CANCEL_ANSWER_SECONDS)
    unanswered = Run.objects.filter(status=Run.Status.RUNNING, cancelled_at__lt=asked_before)
    ended = 0
    for pk, by in unanswered.values_list("pk", "cancelled_by"):
        error = _("Cancelled by %(by)s; its worker did not end it within the grace (it may be gone).") % {"by": by}
        with transaction.atomic():
            if not Run.objects.filter(pk=pk, status=Run.Status.RUNNING).update(
                status=Run.Status.CANCELLED, finished_at=now, error=error
            ):
                continue  # its worker ended it meanwhile
            run = Run.objects.select_related("job").get(pk=pk)
            if run.started_at is not None:
                run.duration_ms = elapsed_ms(run.started_at, now)
                run.save(update_fields=["duration_ms"])
            record(run, run.job)
        ended += 1
        logger.warning("cancelled run ended by the reaper run_id=%s job_id=%s", pk, run.job_id)
    return ended
