"""Admin pages show times in the signed-in staff user's display zone (monitoring.preferences)."""

from __future__ import annotations

import zoneinfo
from collections.abc import Callable

from django.db import DatabaseError, InterfaceError
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django.utils import timezone

from monitoring.preferences import display_zone_of


class DisplayTimezoneMiddleware:
    """Activates the user's zone for the admin's pages only: the API answers in ISO 8601 with the
    server's offset whoever asks, so its output does not depend on who reads it."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self._prefix: str | None = None

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if self._prefix is None:
            self._prefix = reverse("admin:index")
        if not request.path.startswith(self._prefix):
            return self.get_response(request)
        try:
            user = getattr(request, "user", None)
            zone = display_zone_of(user) if user is not None and user.is_authenticated else None
            if zone:
                timezone.activate(zoneinfo.ZoneInfo(zone))
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            timezone.deactivate()
        except (DatabaseError, InterfaceError):
            # The database is down: the view meets it too and answers 503 (DatabaseUnavailableMiddleware),
            # which a failure here, outside any view, would turn into a 500.
            timezone.deactivate()
        try:
            return self.get_response(request)
        finally:
            timezone.deactivate()
