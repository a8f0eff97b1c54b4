"""What a staff user chose for the admin's display: the time zone times are shown in."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _


class DisplayPreference(models.Model):
    """One row per staff user who chose; without one, times show in ``TIME_ZONE``."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        primary_key=True,
        related_name="crontask_display",
        verbose_name=_("user"),
    )
    timezone = models.CharField(
        _("display time zone"),
        max_length=64,
        blank=True,
        help_text=_("IANA name the admin shows times in (Asia/Shanghai). Empty: the server's TIME_ZONE."),
    )

    class Meta:
        verbose_name = _("display preference")
        verbose_name_plural = _("display preferences")

    def __str__(self) -> str:
        return f"{self.user_id}: {self.timezone or settings.TIME_ZONE}"
