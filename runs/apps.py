from __future__ import annotations

from django.apps import AppConfig
from django.utils.translation import gettext_lazy


class RunsConfig(AppConfig):
    name = "runs"
    verbose_name = gettext_lazy("Runs")

    def ready(self) -> None:
        # Register the tasks in every process (web, commands, worker): runs.enqueue sends
        # execute_job through the app's registry by its name, since runs.tasks imports the
        # run modules (runs.execution, runs.reaper, and through them runs.enqueue), not the reverse.
        from runs import retention, tasks  # noqa: F401

        retention.register()  # the cleanup handler and its system job, for jobs to allow and create
