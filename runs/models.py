"""The Run: one execution of a job, with its outcome, output and timing."""

from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from core.status_words import STATUS_WORDS


class Run(models.Model):
    class Trigger(models.TextChoices):
        SCHEDULED = "scheduled", _("Scheduled")
        MANUAL = "manual", _("Manual")
        RETRY = "retry", _("Retry")
        DEPENDENCY = "dependency", _("Dependency")

    class Status(models.TextChoices):
        QUEUED = "queued", _("Queued")
        RUNNING = "running", _("Running")
        SUCCESS = "success", _("Success")
        FAILED = "failed", _("Failed")
        TIMEOUT = "timeout", _("Timed out")
        SKIPPED = "skipped", _("Skipped")
        CANCELLED = "cancelled", _("Cancelled")
        LOST = "lost", _("Lost")

    FINISHED = (Status.SUCCESS, Status.FAILED, Status.TIMEOUT, Status.SKIPPED, Status.CANCELLED, Status.LOST)

    id = models.BigAutoField(primary_key=True)
    job = models.ForeignKey("jobs.Job", on_delete=models.CASCADE, related_name="runs", verbose_name=_("job"))
    trigger = models.CharField(_("trigger"), max_length=10, choices=Trigger.choices)
    scheduled_for = models.DateTimeField(
        _("scheduled for"), null=True, blank=True, help_text=_("The nominal fire time; empty for a manual run.")
    )
    attempt = models.PositiveSmallIntegerField(_("attempt"), default=1)
    retry_of = models.ForeignKey(
        "self",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="retries",
        verbose_name=_("retry of"),
        help_text=_("The first run of the fire this attempt retries."),
    )
    upstream_run = models.ForeignKey(
        "self",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="downstream_runs",
        verbose_name=_("upstream run"),
        help_text=_("The run of an upstream job whose end fired this one (a dependency run and its retries)."),
    )
    status = models.CharField(_("status"), max_length=10, choices=Status.choices, default=Status.QUEUED)

    queued_at = models.DateTimeField(_("queued at"), null=True, blank=True)
    sent_at = models.DateTimeField(
        _("sent at"),
        null=True,
        blank=True,
        help_text=_(
            "When its message was last handed to the broker; empty while it could not be (beat sends it when "
            "the broker is back)."
        ),
    )
    started_at = models.DateTimeField(_("started at"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)
    duration_ms = models.PositiveIntegerField(_("duration (ms)"), null=True, blank=True)

    target = models.TextField(_("target"), blank=True, help_text=_("What ran: 'POST http://…', a handler, a command."))
    status_code = models.PositiveSmallIntegerField(_("HTTP status code"), null=True, blank=True)
    response_body = models.TextField(_("response body"), blank=True)
    result = models.JSONField(_("result"), null=True, blank=True, help_text=_("What a python handler returned."))
    exit_code = models.IntegerField(_("exit code"), null=True, blank=True)
    output = models.TextField(_("output"), blank=True, help_text=_("stdout and stderr of a shell command."))
    overrides = models.JSONField(
        _("overrides"), default=dict, blank=True, help_text=_("One-off values given to a manual run.")
    )
    log_output = models.TextField(_("log output"), blank=True, help_text=_("Lines logged by the handler."))
    error = models.TextField(_("error"), blank=True)
    traceback = models.TextField(_("traceback"), blank=True)

    worker = models.CharField(_("worker"), max_length=200, blank=True)
    celery_task_id = models.CharField(_("Celery task id"), max_length=255, blank=True)

    cancelled_at = models.DateTimeField(
        _("cancelled at"),
        null=True,
        blank=True,
        help_text=_("When it was cancelled; a run still running then ends within the cancel grace."),
    )
    cancelled_by = models.CharField(
        _("cancelled by"),
        max_length=200,
        blank=True,
        help_text=_("Who cancelled it: a user, or the job's 'replace' policy."),
    )

    class Meta:
        verbose_name = _("run")
        verbose_name_plural = _("runs")
        ordering = ["-id"]
        permissions = [("cancel_run", "Can cancel a run")]
        constraints = [
            # One fire gives one run per attempt, however often its message is delivered and
            # however many schedulers fired it. NULL scheduled_for (manual runs) never collides.
            models.UniqueConstraint(fields=["job", "scheduled_for", "attempt"], name="run_one_per_fire_attempt"),
            models.CheckConstraint(name="run_attempt_positive", condition=Q(attempt__gte=1)),
            # A workflow's claim (runs.dependencies): an upstream run fires each downstream job once,
            # however often its outcome is delivered. Its retries carry upstream_run too, as retries.
            models.UniqueConstraint(
                fields=["job", "upstream_run"], name="run_one_per_upstream_run", condition=Q(trigger="dependency")
            ),
        ]
        indexes = [
            # A job's runs, newest first: GET /api/jobs/{id}/runs/, the admin inline. With started_at,
            # a job's runs in a closed time window (whose ids runs.filters.RunFilter bounds first) are
            # counted from the index alone.
            models.Index(fields=["job", "-id"], include=["started_at"], name="run_job_recent_at_idx"),
            # The reaper and the concurrency check: runs still going.
            models.Index(fields=["job", "started_at"], name="run_running_idx", condition=Q(status="running")),
            # Run list filters and retention: started_after/started_before, cleanup by age; with the id,
            # a closed window's id range from the index alone (runs.selectors.started_window_ids).
            models.Index(fields=["started_at", "id"], name="run_started_id_idx"),
            models.Index(fields=["status", "-id"], name="run_status_idx"),
            # Retention (runs.retention): a job's runs queued before the cutoff.
            models.Index(fields=["job", "queued_at"], name="run_job_queued_idx"),
            # Retention without keep-per-job (runs.retention): the whole table's old runs, oldest first,
            # in batches of neighbouring rows; the walk stops at the cutoff.
            models.Index(fields=["queued_at", "id"], name="run_queued_idx"),
            # Beat's outbox sweep (scheduling.outbox.waiting_runs): queued runs no worker has taken, oldest
            # first. Few rows, except while the broker is down.
            models.Index(fields=["queued_at"], name="run_waiting_idx", condition=Q(status="queued")),
            # The workers' cancel watch (runs.cancellation) and the reaper: running runs asked to stop.
            models.Index(
                fields=["cancelled_at"],
                name="run_cancelling_idx",
                condition=Q(status="running", cancelled_at__isnull=False),
            ),
        ]

    def __str__(self) -> str:
        status = STATUS_WORDS.get(self.status, self.status)
        return gettext("run %(id)s of %(job)s (%(status)s)") % {"id": self.pk, "job": self.job_id, "status": status}
