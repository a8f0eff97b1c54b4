from __future__ import annotations

from django.apps import AppConfig
from django.utils.translation import gettext_lazy


class HeartbeatsConfig(AppConfig):
    name = "heartbeats"
    verbose_name = gettext_lazy("Heartbeats")
