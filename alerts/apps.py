from __future__ import annotations

from django.apps import AppConfig


class AlertsConfig(AppConfig):
    name = "alerts"
    verbose_name = "Alerts"

    def ready(self) -> None:
        # Register the tasks in every process: alerts.delivery queues deliver_notification through
        # the app's registry by its name, since alerts.tasks imports alerts.delivery, not the reverse.
        from alerts import tasks  # noqa: F401
