"""``manage.py init_var``: make the embedded defaults' directories and the generated secret key."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop

from core.commands import TranslatedCommand
from crontask.bootstrap import prepare_var_dir


class Command(TranslatedCommand):
    help = gettext_noop(
        "Create var/ (CRONTASK_VAR_DIR), the filesystem broker's folders, STATIC_ROOT and, unless SECRET_KEY "
        "is set, the install's secret key. bin/run does this; run it before starting web, worker or beat "
        "yourself on the embedded defaults."
    )
    # What the system checks would warn about (crontask.W001) is what this command makes.
    requires_system_checks: list[str] = []

    def handle(self, *args: Any, **options: Any) -> None:
        created = prepare_var_dir()
        if created:
            self.stdout.write(_("Created %(paths)s") % {"paths": ", ".join(str(path) for path in created)})
        else:
            self.stdout.write(_("Nothing to create: %(dir)s is ready.") % {"dir": settings.VAR_DIR})
