from __future__ import annotations

from django.apps import AppConfig


class MonitoringConfig(AppConfig):
    """Carries the ``healthcheck`` command; it has no model of its own."""

    name = "monitoring"
    verbose_name = "Monitoring"
