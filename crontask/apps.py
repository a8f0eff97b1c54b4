from __future__ import annotations

from django.apps import AppConfig


class CrontaskConfig(AppConfig):
    """The project package as an app, so that it can carry the ``runall`` command."""

    name = "crontask"
    verbose_name = "Crontask"
