"""The text of a notification, from templates a deployment may override (``templates/alerts/``
in the project comes before the app's own): ``alerts/subject.txt`` and ``alerts/message.txt``.

``build_message`` is what rules call to word an event about a job and its run; ``alert_for``
adds the subject and the data a webhook sends.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.conf import settings
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.translation import pgettext_lazy

from alerts.channels.base import Alert
from alerts.models import Incident, Notification
from jobs.secrets import mask_message, secret_values

if TYPE_CHECKING:
    from datetime import datetime

    from jobs.models import Job
    from runs.models import Run

# A run's status as a message writes it: the code in English ("Run 5: failed"), a word in Chinese.
STATUS_WORDS = {
    "queued": pgettext_lazy("a run's status in a notification", "queued"),
    "running": pgettext_lazy("a run's status in a notification", "running"),
    "success": pgettext_lazy("a run's status in a notification", "success"),
    "failed": pgettext_lazy("a run's status in a notification", "failed"),
    "timeout": pgettext_lazy("a run's status in a notification", "timeout"),
    "skipped": pgettext_lazy("a run's status in a notification", "skipped"),
    "cancelled": pgettext_lazy("a run's status in a notification", "cancelled"),
    "lost": pgettext_lazy("a run's status in a notification", "lost"),
}


def context(
    event: str,
    *,
    job: Job | None = None,
    run: Run | None = None,
    incident: Incident | None = None,
    detail: str = "",
    reminder: bool = False,
) -> dict[str, Any]:
    """What the templates (and a webhook's JSON) are given about ``event``."""
    labels = dict(Notification.Event.choices)
    data: dict[str, Any] = {
        "event": event,
        "event_label": str(labels.get(event, event)),
        "job": None,
        "run": None,
        "incident": None,
        "detail": detail,
        "reminder": reminder,
    }
    if incident is not None:
        data["incident"] = {
            "id": incident.pk,
            "event": incident.event,
            "occurrences": incident.occurrences,
            "opened_at": _local(incident.opened_at, job).isoformat(),
            "closed_at": _local(incident.closed_at, job).isoformat() if incident.closed_at else None,
        }
    if job is not None:
        data["job"] = {"id": job.pk, "name": job.name or job.pk, "timezone": job.timezone}
    if run is not None:
        data["run"] = {
            "id": run.pk,
            "status": run.status,
            "attempt": run.attempt,
            "error": mask_message(run.error, secret_values(job)) if job is not None else mask_message(run.error, ()),
            "duration_ms": run.duration_ms,
            "scheduled_for": _local(run.scheduled_for, job).isoformat() if run.scheduled_for else None,
            "started_at": _local(run.started_at, job).isoformat() if run.started_at else None,
            "url": run_url(run.pk),
        }
        # The message's word for the run's status (a webhook's data keeps the code).
        data["run_status_label"] = str(STATUS_WORDS.get(run.status, run.status))
    return data


def local_time(moment: datetime, job: Job) -> str:
    """``moment`` in the job's time zone, as messages write it."""
    return f"{_local(moment, job).isoformat()} ({job.timezone})"


def _local(moment: datetime, job: Job | None) -> datetime:
    try:
        return moment.astimezone(ZoneInfo(job.timezone)) if job is not None else moment
    except (ZoneInfoNotFoundError, ValueError):
        return moment


def run_url(run_id: int) -> str:
    """The run's page in the admin, under CRONTASK_BASE_URL."""
    return settings.CRONTASK_BASE_URL.rstrip("/") + reverse("admin:runs_run_change", args=[run_id])


def build_message(
    event: str,
    *,
    job: Job | None = None,
    run: Run | None = None,
    incident: Incident | None = None,
    detail: str = "",
    reminder: bool = False,
) -> str:
    """The message text for ``event`` (``alerts/message.txt``): ``detail`` says what the rule saw
    ("3 fires in a row failed"), ``reminder`` that the incident is still open."""
    data = context(event, job=job, run=run, incident=incident, detail=detail, reminder=reminder)
    return render_to_string("alerts/message.txt", data).strip() + "\n"


def alert_for(
    event: str, text: str, *, job: Job | None = None, run: Run | None = None, incident: Incident | None = None
) -> Alert:
    """What a sender sends: the subject (``alerts/subject.txt``), ``text``, and the event's data."""
    data = context(event, job=job, run=run, incident=incident)
    subject = " ".join(render_to_string("alerts/subject.txt", data).split())
    return Alert(
        event=event,
        subject=subject,
        text=text,
        data={"job": data["job"], "run": data["run"], "incident": data["incident"]},
    )
