"""The heartbeat of each long-running process: beat's and each worker's."""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _


class Heartbeat(models.Model):
    """The last sign of life of a long-running process (beat, a worker), for /api/health/ and the dashboard."""

    name = models.CharField(_("name"), max_length=50, primary_key=True)
    hostname = models.CharField(_("host"), max_length=255, blank=True)
    pid = models.PositiveIntegerField(_("process id"), null=True, blank=True)
    seen_at = models.DateTimeField(_("last seen at"))

    class Meta:
        # The table the model had in the project package (crontask), before it moved here: the
        # move changed no table (heartbeats/migrations/0001_initial.py).
        db_table = "crontask_heartbeat"
        verbose_name = _("heartbeat")
        verbose_name_plural = _("heartbeats")

    def __str__(self) -> str:
        return f"{self.name} @ {self.hostname}"
