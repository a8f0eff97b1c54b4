"""Answers for what a view cannot help: input no database can hold, a database that is away."""

from __future__ import annotations

import logging
from collections.abc import Callable

from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBadRequest, JsonResponse
from django.utils import translation
from django.utils.translation import gettext as _

from core.outage import DATABASE_DISCONNECTS, describe
from core.views import is_api

logger = logging.getLogger(__name__)


class RejectNulMiddleware:
    """A NUL character in the path is a 404, in the query string a 400.

    PostgreSQL refuses a NUL in any text value (SQLite keeps it), so no job id, run id, filter or
    search term containing one can match anything; passed on to the database, it would be a 500
    on every path that looks something up (API, Weizhi-compatible and admin alike).
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if "\x00" in request.path:
            raise Http404(_("No such object."))
        if any("\x00" in key or any("\x00" in value for value in values) for key, values in request.GET.lists()):
            # Ahead of LocaleMiddleware (nothing else should see the NUL): the language asked for, here.
            with translation.override(translation.get_language_from_request(request)):
                reason = _("The query string contains a NUL character, which no value can hold.")
            if is_api(request):
                return JsonResponse({"detail": reason}, status=400)
            return HttpResponseBadRequest(reason)
        return self.get_response(request)


class DatabaseUnavailableMiddleware:
    """A request that meets a database that is down or restarting gets 503 with the reason and a
    Retry-After, not a 500: nothing is wrong with the request, and it will work again shortly.
    (Workers and beat wait for the database themselves: see core.outage.)"""

    RETRY_AFTER_SECONDS = 5

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not isinstance(exception, DATABASE_DISCONNECTS):
            return None
        logger.warning("database unavailable for %s %s: %s", request.method, request.path, describe(exception))
        reason = _("The database is unavailable; try again shortly.")
        response: HttpResponse
        if is_api(request):
            response = JsonResponse({"detail": reason}, status=503)
        else:
            response = HttpResponse(reason, status=503, content_type="text/plain")
        response["Retry-After"] = str(self.RETRY_AFTER_SECONDS)
        return response
