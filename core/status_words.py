"""The words of the statuses people read (a job's, a run's, a job's health), in the request's
language; English keeps the stored value's word. The admin's badges and the run's name use them."""

from __future__ import annotations

from django.utils.translation import pgettext_lazy

STATUS_WORDS = {
    "active": pgettext_lazy("status badge", "active"),
    "success": pgettext_lazy("status badge", "success"),
    "healthy": pgettext_lazy("status badge", "healthy"),
    "failing": pgettext_lazy("status badge", "failing"),
    "late": pgettext_lazy("status badge", "late"),
    "never_run": pgettext_lazy("status badge", "never run"),
    "paused": pgettext_lazy("status badge", "paused"),
    "queued": pgettext_lazy("status badge", "queued"),
    "running": pgettext_lazy("status badge", "running"),
    "completed": pgettext_lazy("status badge", "completed"),
    "failed": pgettext_lazy("status badge", "failed"),
    "timeout": pgettext_lazy("status badge", "timeout"),
    "lost": pgettext_lazy("status badge", "lost"),
    "skipped": pgettext_lazy("status badge", "skipped"),
    "cancelled": pgettext_lazy("status badge", "cancelled"),
    "deleted": pgettext_lazy("status badge", "deleted"),
}
