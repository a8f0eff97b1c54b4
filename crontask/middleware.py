"""Requests that carry what no database can hold, answered before any view sees them."""

from __future__ import annotations

from collections.abc import Callable

from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBadRequest, JsonResponse

from crontask.views import is_api


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
            raise Http404("No such object.")
        if any("\x00" in key or any("\x00" in value for value in values) for key, values in request.GET.lists()):
            reason = "The query string contains a NUL character, which no value can hold."
            if is_api(request):
                return JsonResponse({"detail": reason}, status=400)
            return HttpResponseBadRequest(reason)
        return self.get_response(request)
