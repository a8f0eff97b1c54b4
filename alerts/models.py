"""Notification channels and the record of each notification sent through one.

Rules and incidents (what decides that a notification is due) come later; a ``Notification``
names the job and run it is about, and will name its rule then (see docs/contract.md).
"""

from __future__ import annotations

from django.db import models
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
    # The rule that asked for it: a nullable foreign key to the alert rules, added with them.
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
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        ordering = ["-id"]
        verbose_name = _("notification")
        verbose_name_plural = _("notifications")
        indexes = [models.Index(fields=["channel", "-id"]), models.Index(fields=["job", "-id"])]

    def __str__(self) -> str:
        return f"{self.event} to {self.channel_id}: {self.status}"
