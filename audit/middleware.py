"""Writes refused in the admin (403) are in the audit trail, as the API's are (``audit.api``)."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from audit.services import audit_refused_write

SAFE_METHODS = ("GET", "HEAD", "OPTIONS", "TRACE")


class AdminRefusedWriteMiddleware:
    """A POST to an admin page answered 403 (a change, an action or a button the user may not use)
    is recorded as ``permission_denied``. The API records its own, with the permission it lacked."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if (
            response.status_code == 403
            and request.method not in SAFE_METHODS
            and request.path_info.startswith("/admin/")
        ):
            audit_refused_write(method=str(request.method), path=request.path, permission="the admin refused it")
        return response
