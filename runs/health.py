"""A job's health at a glance, from its recent runs and its schedule: one SQL expression, so the
job list's badge, its filter and the dashboard's counts all say the same.

In order (the first that holds):
- ``paused``: the job is paused;
- ``failing``: its last final attempt failed (``failed``, ``timeout`` or ``lost``: the job's
  ``last_run_status``, set as each attempt ends; skipped fires are not attempts and do not count);
- ``late``: an active job whose next fire is overdue by more than its misfire grace (``DEFAULT_GRACE``
  when it has none), or any active scheduled job while beat has not been seen for ``BEAT_STALE_AFTER``;
- ``never_run``: no run has ended yet;
- ``healthy``: none of those.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, TypedDict

from django.db import connection
from django.db.models import Case, Count, DurationField, ExpressionWrapper, F, Q, QuerySet, Value, When
from django.db.models.functions import Coalesce
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from heartbeats.models import Heartbeat
from heartbeats.services import BEAT
from jobs.models import Job
from runs.models import Run

if TYPE_CHECKING:
    from django_stubs_ext import WithAnnotations


class Health(TypedDict):
    health: str  # with_health's annotation


HEALTHY, FAILING, LATE, PAUSED, NEVER_RUN = "healthy", "failing", "late", "paused", "never_run"
STATES = (FAILING, LATE, HEALTHY, NEVER_RUN, PAUSED)  # the order the dashboard lists them in
LABELS = {
    HEALTHY: _("healthy"),
    FAILING: _("failing"),
    LATE: _("late"),
    PAUSED: _("paused"),
    NEVER_RUN: _("never run"),
}
#: The badge colour of each state (core.admin_utils.STATUS_COLOURS' keys).
COLOURS_KEY = {HEALTHY: "healthy", FAILING: "failing", LATE: "late", PAUSED: "paused", NEVER_RUN: "never_run"}

FAILED = (Run.Status.FAILED, Run.Status.TIMEOUT, Run.Status.LOST)
#: How overdue a fire of a job with no misfire grace may be before the job is late: beat claims a
#: fire within a second of its time, so a minute means beat is not firing it.
DEFAULT_GRACE = timedelta(seconds=60)
#: Beat writes its heartbeat every 5 s; none for this long and every scheduled job is late.
BEAT_STALE_AFTER = timedelta(seconds=60)


def beat_seen(*, now: datetime | None = None) -> bool:
    since = (now or timezone.now()) - BEAT_STALE_AFTER
    return Heartbeat.objects.filter(name=BEAT, seen_at__gte=since).exists()


def health_expression(*, now: datetime, beat_is_seen: bool) -> Case:
    seconds = Coalesce(F("misfire_grace_seconds"), Value(int(DEFAULT_GRACE.total_seconds())))
    if connection.features.has_native_duration_field:  # PostgreSQL: seconds times an interval
        grace = ExpressionWrapper(seconds * Value(timedelta(seconds=1)), output_field=DurationField())
    else:  # SQLite keeps a duration as microseconds, and cannot multiply a number by one
        grace = ExpressionWrapper(seconds * Value(1_000_000), output_field=DurationField())
    scheduled = Q(status=Job.Status.ACTIVE, next_run_at__isnull=False)
    overdue = Q(next_run_at__lt=Value(now) - grace) if beat_is_seen else Q()
    return Case(
        When(status=Job.Status.PAUSED, then=Value(PAUSED)),
        When(last_run_status__in=FAILED, then=Value(FAILING)),
        When(scheduled & overdue, then=Value(LATE)),
        When(last_run_at__isnull=True, then=Value(NEVER_RUN)),
        default=Value(HEALTHY),
    )


def with_health(queryset: QuerySet[Job], *, now: datetime | None = None) -> QuerySet[WithAnnotations[Job, Health]]:
    """The jobs, each annotated with ``health`` (one of the states above)."""
    now = now or timezone.now()
    return queryset.annotate(health=health_expression(now=now, beat_is_seen=beat_seen(now=now)))


def health_counts(*, now: datetime | None = None) -> dict[str, int]:
    """How many jobs are in each state (every state, zeros included), in ``STATES`` order."""
    rows = with_health(Job.objects.order_by(), now=now).values("health").annotate(n=Count("pk"))
    found = {row["health"]: row["n"] for row in rows}
    return {state: found.get(state, 0) for state in STATES}


def failing_jobs(*, limit: int = 10, now: datetime | None = None) -> list[Job]:
    """The failing jobs, the latest failure first."""
    return list(
        with_health(Job.objects.all(), now=now)
        .filter(health=FAILING)
        .order_by("-last_run_at")
        .only("id", "name", "last_run_at", "last_run_status", "run_count", "failure_count", "timezone")[:limit]
    )


def job_health(job: Job, *, now: datetime | None = None) -> str:
    """One job's state (the job page)."""
    state = with_health(Job.objects.filter(pk=job.pk), now=now).values_list("health", flat=True).first()
    return state or NEVER_RUN
