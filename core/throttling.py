"""API rate limits: CRONTASK_API_THROTTLE_USER per authenticated user, CRONTASK_API_THROTTLE_ANON
per client address for anonymous requests; each is off while its setting is empty (the default).

Both classes are always in REST_FRAMEWORK's DEFAULT_THROTTLE_CLASSES and read their rate from
settings on each request, not from DRF's DEFAULT_THROTTLE_RATES (which DRF reads once, at import):
a class whose rate is off lets every request through without touching the cache, and a test can
turn a limit on with ``override_settings``. The counts live in the default cache (see
CRONTASK_CACHE_URL in settings): in process memory unless a shared cache is configured, so a limit
then holds per web process.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.conf import settings
from rest_framework.throttling import AnonRateThrottle, UserRateThrottle

if TYPE_CHECKING:
    from rest_framework.request import Request
    from rest_framework.views import APIView


class UserThrottle(UserRateThrottle):
    """Authenticated requests only (DRF's UserRateThrottle would also count anonymous ones, by
    address, against the user rate): anonymous requests are AnonThrottle's."""

    def get_rate(self) -> str | None:
        return settings.CRONTASK_API_THROTTLE_USER or None

    def get_cache_key(self, request: Request, view: APIView) -> str | None:
        if not (request.user and request.user.is_authenticated):
            return None
        return super().get_cache_key(request, view)


class AnonThrottle(AnonRateThrottle):
    def get_rate(self) -> str | None:
        return settings.CRONTASK_API_THROTTLE_ANON or None
