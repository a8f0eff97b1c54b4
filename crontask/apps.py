from __future__ import annotations

from django.apps import AppConfig
from django.core import checks


class CrontaskConfig(AppConfig):
    """The project package as an app, so that it can carry the ``runall`` and ``init_var`` commands."""

    name = "crontask"
    verbose_name = "Crontask"

    def ready(self) -> None:
        from django.contrib import admin
        from django.db.backends.signals import connection_created

        from core.prepared_statements import watch_prepared_statements
        from crontask.bootstrap import check_var_dir

        checks.register(check_var_dir)
        # A connection whose prepared statements a migration broke is renewed, not kept failing.
        connection_created.connect(watch_prepared_statements, dispatch_uid="watch_prepared_statements")
        # The lists fit a 1280 px window without the app list beside them; the index and the
        # breadcrumbs lead everywhere.
        admin.site.enable_nav_sidebar = False
        # Nothing but the admin lives on this site: no "View site" link (``/`` leads to the admin).
        admin.site.site_url = None
