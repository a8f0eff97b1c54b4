"""/api/health/, from the heartbeats of the processes (monitoring.health)."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

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
            200: OpenApiResponse(description="Every part is up."),
            503: OpenApiResponse(description="A part is down: its entry says which and why."),
        }
    )
    def get(self, request: Request) -> Response:
        healthy, report = health_report(show_hostnames=bool(request.user and request.user.is_staff))
        return Response(report, status=200 if healthy else 503)
