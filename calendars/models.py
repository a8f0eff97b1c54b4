"""Calendars: named sets of windows when the jobs that name them must not run (blackouts)."""

from __future__ import annotations

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from jobs.triggers import get_zone

#: The longest a recurring window lasts: a year.
MAX_DURATION_SECONDS = 366 * 86400


def default_time_zone() -> str:
    return settings.TIME_ZONE


def validate_time_zone(name: str) -> None:
    get_zone(name)  # ValidationError naming the problem


class Calendar(models.Model):
    name = models.CharField(_("name"), max_length=100, unique=True)
    description = models.TextField(_("description"), blank=True)
    time_zone = models.CharField(
        _("time zone"), max_length=64, default=default_time_zone, validators=[validate_time_zone],
        help_text=_("IANA name the windows' times and crons are read in."),
    )  # fmt: skip
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    # Bumped by every change to the calendar or its windows (calendars.services): beat reloads a
    # calendar whose updated_at moved (scheduling.blackouts).
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("calendar")
        verbose_name_plural = _("calendars")
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Window(models.Model):
    """When the calendar's jobs must not run: a range (``start`` to ``end``, end excluded), or
    recurring (from each fire of ``cron``, in the calendar's zone, for ``duration_seconds``)."""

    class Kind(models.TextChoices):
        RANGE = "range", _("Date-time range")
        RECURRING = "recurring", _("Recurring (cron and duration)")

    calendar = models.ForeignKey(Calendar, on_delete=models.CASCADE, related_name="windows")
    kind = models.CharField(_("kind"), max_length=10, choices=Kind.choices, default=Kind.RANGE)
    name = models.CharField(_("name"), max_length=200, blank=True, help_text=_("A holiday's name, say."))
    start = models.DateTimeField(_("start"), null=True, blank=True)
    end = models.DateTimeField(_("end"), null=True, blank=True, help_text=_("Excluded."))
    cron = models.CharField(_("cron"), max_length=200, blank=True, help_text=_("When each window starts."))
    duration_seconds = models.PositiveIntegerField(
        _("duration (seconds)"), null=True, blank=True,
        validators=[MinValueValidator(1), MaxValueValidator(MAX_DURATION_SECONDS)],
    )  # fmt: skip

    class Meta:
        verbose_name = _("window")
        verbose_name_plural = _("windows")
        ordering = ["calendar", "start", "id"]
        constraints = [
            models.CheckConstraint(
                name="window_kind_fields",
                condition=(
                    Q(kind="range", start__isnull=False, end__isnull=False, cron="", duration_seconds__isnull=True)
                    | Q(kind="recurring", start__isnull=True, end__isnull=True, duration_seconds__gte=1) & ~Q(cron="")
                ),
            ),
            models.CheckConstraint(
                name="window_range_order", condition=Q(start__isnull=True) | Q(end__gt=models.F("start"))
            ),
        ]

    def __str__(self) -> str:
        if self.kind == self.Kind.RECURRING:
            return f"{self.name or 'window'}: {self.cron} for {self.duration_seconds} s"
        return f"{self.name or 'window'}: {self.start} to {self.end}"
