"""/api/health/, from the heartbeats of the processes (monitoring.health), and /metrics (monitoring.metrics)."""

from __future__ import annotations

import hmac

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe
from drf_spectacular.utils import OpenApiResponse, extend_schema
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from monitoring import metrics
from monitoring.health import health_report


class HealthView(APIView):
    """GET /api/health/: database, broker, beat and workers (from their heartbeats); 503 naming what
    is down.

    Anyone may ask (load balancers, container checks), and it is never rate-limited: a load
    balancer asks often from one address. Credentials are still read when sent, because only
    staff see host and worker names.
    """

    permission_classes = [AllowAny]
    throttle_classes: list = []

    @extend_schema(
        responses={
            200: OpenApiResponse(description=gettext_lazy("Every part is up.")),
            503: OpenApiResponse(description=gettext_lazy("A part is down: its entry says which and why.")),
        }
    )
    def get(self, request: Request) -> Response:
        healthy, report = health_report(show_hostnames=bool(request.user and request.user.is_staff))
        return Response(report, status=200 if healthy else 503)


@never_cache
@require_safe
def metrics_view(request: HttpRequest) -> HttpResponse:
    """GET /metrics: the Prometheus text format. With ``CRONTASK_METRICS_TOKEN`` set, only a request
    that sends it (``Authorization: Bearer <token>``) is answered, others get a 401; unset, anyone
    who reaches web may read it. Not a DRF view: no session, throttle or content negotiation."""
    token = settings.CRONTASK_METRICS_TOKEN
    if token and not _bearer_matches(request.headers.get("Authorization", ""), token):
        response = HttpResponse(_("A bearer token is required.") + "\n", status=401, content_type="text/plain")
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    return HttpResponse(generate_latest(metrics.registry()), content_type=CONTENT_TYPE_LATEST)


def _bearer_matches(header: str, token: str) -> bool:
    scheme, _, given = header.partition(" ")
    # Compared in constant time: how long a wrong guess takes tells nothing of the token.
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())
