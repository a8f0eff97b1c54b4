"""The audit trail: one row per action on a job or a run, who did it, through what, from where.

Append-only: a row is written once (``audit.services.audit_record``) and never changed or deleted
through the app; only the retention command prunes by age (``audit.services.audit_prune``). It names
its job by id and its run by number, with no foreign key: jobs sit above this app, and an entry
outlives the job it is about (a delete is the last thing remembered of it).
"""

from __future__ import annotations

from typing import Any

from django.db import models
from django.utils import timezone
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _


class AppendOnly(Exception):
    """An audit entry may be added, never changed or deleted (but pruned by age)."""


class AuditEntryQuerySet(models.QuerySet["AuditEntry"]):
    def update(self, **kwargs: Any) -> int:
        raise AppendOnly(gettext("Audit entries are append-only: they cannot be updated."))

    def delete(self) -> tuple[int, dict[str, int]]:
        raise AppendOnly(gettext("Audit entries are append-only: prune them by age (prune_audit)."))


class AuditEntry(models.Model):
    class Action(models.TextChoices):
        CREATE = "create", _("create")
        UPDATE = "update", _("update")
        DELETE = "delete", _("delete")
        RESTORE = "restore", _("restore")
        REVERT = "revert", _("revert")
        PAUSE = "pause", _("pause")
        RESUME = "resume", _("resume")
        RUN_NOW = "run_now", _("run now")
        CANCEL = "cancel", _("cancel")
        BULK = "bulk", _("bulk")
        PERMISSION_DENIED = "permission_denied", _("permission denied")

    class Source(models.TextChoices):
        API = "api", _("API")
        ADMIN = "admin", _("admin")
        WEIZHI = "weizhi", _("Weizhi paths")
        IMPORT = "import", _("import")
        COMMAND = "command", _("command")
        SYSTEM = "system", _("system")

    at = models.DateTimeField(_("at"), default=timezone.now, db_index=True)
    actor = models.CharField(_("actor"), max_length=150, help_text=_('A username, or "system", "import", …'))
    action = models.CharField(_("action"), max_length=20, choices=Action.choices)
    job_id = models.CharField(_("job"), max_length=100, blank=True, default="")
    run_id = models.BigIntegerField(_("run"), null=True, blank=True)
    source = models.CharField(_("source"), max_length=10, choices=Source.choices)
    client_ip = models.GenericIPAddressField(_("client address"), null=True, blank=True)
    reason = models.CharField(_("reason"), max_length=500, blank=True, default="")
    # What the action was about: changed field names, a bulk action's ids and results, a refused
    # permission and path. Never a value a job keeps secret.
    details = models.JSONField(_("details"), default=dict, blank=True)

    objects = AuditEntryQuerySet.as_manager()

    class Meta:
        verbose_name = _("audit entry")
        verbose_name_plural = _("audit trail")
        ordering = ["-at", "-id"]
        indexes = [
            models.Index(fields=["job_id", "-at"], name="audit_job_at_idx"),
            models.Index(fields=["actor", "-at"], name="audit_actor_at_idx"),
            models.Index(fields=["action", "-at"], name="audit_action_at_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.actor} {self.action} {self.job_id}".rstrip()

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise AppendOnly(gettext("Audit entries are append-only: they cannot be changed."))
        kwargs["force_insert"] = True
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        raise AppendOnly(gettext("Audit entries are append-only: prune them by age (prune_audit)."))
