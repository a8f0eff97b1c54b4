"""Alerting: where notifications go (``Channel``), what asks for them (``AlertRule``), the open
problem they are about (``Incident``: one per rule and job while it lasts), and the record of
each one sent (``Notification``).

``alerts.evaluation`` decides, as a run's outcome is stored, what a rule makes of it;
``alerts.sweep`` checks what no run tells (no success for a while, reminders); ``alerts.delivery``
sends.
"""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _


class Channel(models.Model):
    """Where notifications go: an email address list, a webhook, or a chat robot's webhook."""

    class Kind(models.TextChoices):
        EMAIL = "email", _("Email")
        WEBHOOK = "webhook", _("Webhook")
        SLACK = "slack", _("Slack")
        DINGTALK = "dingtalk", _("DingTalk")
        FEISHU = "feishu", _("Feishu / Lark")
        WECOM = "wecom", _("WeCom")

    id = models.BigAutoField(primary_key=True)
    name = models.CharField(_("name"), max_length=200)
    kind = models.CharField(_("kind"), max_length=10, choices=Kind.choices)
    target = models.TextField(
        _("target"), help_text=_("The webhook's URL, or comma-separated email addresses for email.")
    )
    secret = models.CharField(
        _("secret"),
        max_length=500,
        blank=True,
        help_text=_("Signs what is sent: the webhook's HMAC key, DingTalk's or Feishu's signing secret."),
    )
    enabled = models.BooleanField(_("enabled"), default=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        ordering = ["id"]
        verbose_name = _("channel")
        verbose_name_plural = _("channels")

    def __str__(self) -> str:
        return f"{self.name} ({self.kind})"


class AlertRule(models.Model):
    """What to tell which channels about which jobs: an event and its threshold."""

    class Event(models.TextChoices):
        FAILED = "failed", _("Failed")
        CONSECUTIVE_FAILURES = "consecutive_failures", _("Consecutive failures")
        RECOVERED = "recovered", _("Recovered")
        SLOW = "slow", _("Slow")
        LATE = "late", _("Late")
        NO_SUCCESS = "no_success", _("No success")

    id = models.BigAutoField(primary_key=True)
    name = models.CharField(_("name"), max_length=200)
    event = models.CharField(_("event"), max_length=24, choices=Event.choices)
    threshold = models.PositiveBigIntegerField(
        _("threshold"),
        null=True,
        blank=True,
        help_text=_(
            "consecutive_failures: fires in a row; slow: milliseconds (empty: 3 times the p95 of the job's "
            "last 50 successful runs); late: milliseconds after the fire's time (empty: only fires skipped "
            "by misfire); no_success: seconds. Not used by failed and recovered."
        ),
    )
    jobs = models.ManyToManyField(
        "jobs.Job",
        blank=True,
        related_name="alert_rules",
        verbose_name=_("jobs"),
        help_text=_("The jobs it watches, besides those with one of its tags; no jobs and no tags: every job."),
    )
    tags = models.JSONField(
        _("tags"),
        default=list,
        blank=True,
        help_text=_("It also watches every job that has one of these tags; no jobs and no tags: every job."),
    )
    channels = models.ManyToManyField(
        Channel, related_name="rules", verbose_name=_("channels"), help_text=_("Where its notifications go.")
    )
    remind_every_seconds = models.PositiveIntegerField(
        _("remind every (seconds)"),
        null=True,
        blank=True,
        help_text=_("Send the alert again this often while its incident stays open; empty: never."),
    )
    enabled = models.BooleanField(_("enabled"), default=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        ordering = ["id"]
        verbose_name = _("alert rule")
        verbose_name_plural = _("alert rules")

    def __str__(self) -> str:
        return f"{self.name} ({self.event})"


class Incident(models.Model):
    """A problem a rule saw with a job, from its first alert to its recovery: further failures add
    to it without a new message (reminders aside)."""

    id = models.BigAutoField(primary_key=True)
    rule = models.ForeignKey(AlertRule, on_delete=models.CASCADE, related_name="incidents", verbose_name=_("rule"))
    job = models.ForeignKey("jobs.Job", on_delete=models.CASCADE, related_name="alert_incidents", verbose_name=_("job"))
    event = models.CharField(_("event"), max_length=24, choices=AlertRule.Event.choices)
    occurrences = models.PositiveIntegerField(
        _("occurrences"), default=1, help_text=_("How many runs (or checks) found the problem while it was open.")
    )
    first_run = models.ForeignKey(
        "runs.Run", on_delete=models.SET_NULL, null=True, blank=True, related_name="+", verbose_name=_("first run")
    )
    last_run = models.ForeignKey(
        "runs.Run", on_delete=models.SET_NULL, null=True, blank=True, related_name="+", verbose_name=_("last run")
    )
    opened_at = models.DateTimeField(_("opened at"))
    last_notified_at = models.DateTimeField(_("last notified at"))
    closed_at = models.DateTimeField(_("closed at"), null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        verbose_name = _("incident")
        verbose_name_plural = _("incidents")
        constraints = [
            # One open incident per rule and job, however many workers see the job fail at once.
            models.UniqueConstraint(
                fields=["rule", "job"], condition=models.Q(closed_at__isnull=True), name="incident_one_open"
            ),
        ]
        indexes = [
            # Recovery (alerts.evaluation) and the job form: a job's open incidents.
            models.Index(fields=["job"], condition=models.Q(closed_at__isnull=True), name="incident_open_job_idx"),
            # Reminders (alerts.sweep): the open incidents, oldest notified first.
            models.Index(
                fields=["last_notified_at"], condition=models.Q(closed_at__isnull=True), name="incident_open_idx"
            ),
        ]

    def __str__(self) -> str:
        state = gettext("open") if self.closed_at is None else gettext("closed")
        return gettext("%(event)s of %(job)s (%(state)s)") % {"event": self.event, "job": self.job_id, "state": state}


class Notification(models.Model):
    """One message to one channel, and how its delivery went."""

    class Event(models.TextChoices):
        FAILED = "failed", _("Failed")
        CONSECUTIVE_FAILURES = "consecutive_failures", _("Consecutive failures")
        RECOVERED = "recovered", _("Recovered")
        SLOW = "slow", _("Slow")
        LATE = "late", _("Late")
        NO_SUCCESS = "no_success", _("No success")
        TEST = "test", _("Test message")

    class Status(models.TextChoices):
        PENDING = "pending", _("Pending")
        SENT = "sent", _("Sent")
        FAILED = "failed", _("Failed")

    id = models.BigAutoField(primary_key=True)
    rule = models.ForeignKey(
        AlertRule, on_delete=models.SET_NULL, null=True, blank=True, related_name="+", verbose_name=_("rule")
    )
    incident = models.ForeignKey(
        Incident,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="notifications",
        verbose_name=_("incident"),
    )
    job = models.ForeignKey(
        "jobs.Job", on_delete=models.SET_NULL, null=True, blank=True, related_name="+", verbose_name=_("job")
    )
    run = models.ForeignKey(
        "runs.Run", on_delete=models.SET_NULL, null=True, blank=True, related_name="+", verbose_name=_("run")
    )
    channel = models.ForeignKey(
        Channel, on_delete=models.CASCADE, related_name="notifications", verbose_name=_("channel")
    )
    event = models.CharField(_("event"), max_length=24, choices=Event.choices)
    message = models.TextField(_("message"), blank=True, help_text=_("The text sent."))
    status = models.CharField(_("status"), max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(_("attempts"), default=0)
    error = models.TextField(_("error"), blank=True, help_text=_("Why the last attempt failed (secrets masked)."))
    sent_at = models.DateTimeField(_("sent at"), null=True, blank=True)
    next_attempt_at = models.DateTimeField(
        _("next attempt at"),
        null=True,
        blank=True,
        help_text=_("While pending: when its next attempt is due (a lost message is queued again after that)."),
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        ordering = ["-id"]
        verbose_name = _("notification")
        verbose_name_plural = _("notifications")
        indexes = [
            models.Index(fields=["channel", "-id"]),
            models.Index(fields=["job", "-id"]),
            # The sweep (alerts.sweep): pending notifications whose message was lost.
            models.Index(
                fields=["next_attempt_at"], condition=models.Q(status="pending"), name="notification_pending_idx"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.event} to {self.channel_id}: {self.status}"
