from __future__ import annotations

from django.apps import AppConfig
from django.utils.translation import gettext_lazy


class CalendarsConfig(AppConfig):
    name = "calendars"
    verbose_name = gettext_lazy("Calendars")

    def ready(self) -> None:
        # Jobs name calendars by id (Job.calendars) and check those ids through this hook: the
        # calendars app sits above jobs (it reads the cron maths, and the jobs that use a calendar).
        from calendars.selectors import unknown_calendar_ids
        from jobs.validators import register_calendar_check

        register_calendar_check(unknown_calendar_ids)
