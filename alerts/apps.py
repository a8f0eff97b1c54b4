from __future__ import annotations

from django.apps import AppConfig
from django.utils.translation import gettext_lazy


class AlertsConfig(AppConfig):
    name = "alerts"
    verbose_name = gettext_lazy("Alerts")

    def ready(self) -> None:
        # Register the tasks in every process: alerts.delivery queues deliver_notification through
        # the app's registry by its name, since alerts.tasks imports alerts.delivery, not the reverse.
        from alerts import evaluation, tasks  # noqa: F401
        from runs.watchers import watch_runs

        # Every run that ends is weighed against the rules watching its job, in the transaction that ends it.
        watch_runs(evaluation.run_ended, wants=evaluation.watched)
