"""The project's error pages: JSON on the API's paths, Django's HTML pages elsewhere."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.translation import gettext as _
from django.views import defaults


def is_api(request: HttpRequest) -> bool:
    return request.path.startswith(("/api/", "/jobs", "/health", "/demo/"))


def not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    """JSON 404 for API paths no route matched (e.g. an id with a slash); the HTML page elsewhere."""
    if is_api(request):
        return JsonResponse({"detail": _("Not found.")}, status=404)
    return defaults.page_not_found(request, exception)


def server_error(request: HttpRequest) -> HttpResponse:
    if is_api(request):
        return JsonResponse({"detail": _("Internal server error.")}, status=500)
    return defaults.server_error(request)
