from __future__ import annotations

from django.apps import AppConfig
from django.utils.translation import gettext_lazy


class MonitoringConfig(AppConfig):
    """Carries the ``healthcheck`` command, ``GET /metrics``, the dashboard and staff display preferences."""

    name = "monitoring"
    verbose_name = gettext_lazy("Monitoring")

    def ready(self) -> None:
        from monitoring import metrics
        from runs.watchers import watch_runs

        # Every run that ends is counted (after its commit), in the process that ended it. Without a
        # savepoint: the counter writes nothing to the database, and a savepoint is 2 statements a run.
        watch_runs(metrics.run_ended, savepoint=False)
