"""API errors as field-keyed JSON: domain errors from services become 400 or 409, never 500."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied, SuspiciousOperation
from django.core.exceptions import ValidationError as DjangoValidationError
from django.utils.translation import gettext as _
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import exception_handler


class Conflict(Exception):
    """The request conflicts with the state of what it names (HTTP 409, keyed by ``field``).

    The apps' own conflicts (``jobs.errors.JobConflict``) derive from it, so that this handler,
    below them, maps them without knowing them."""

    def __init__(self, message: str, *, field: str = "id") -> None:
        super().__init__(message)
        self.message = message
        self.field = field


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, DjangoValidationError):
        detail = exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}
        return Response(detail, status=status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, SuspiciousOperation):  # a request too big or with too many fields
        return Response({"detail": str(exc) or _("Bad request.")}, status=status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, PermissionDenied) and str(exc):  # a service's refusal, with its reason
        return Response({"detail": str(exc)}, status=status.HTTP_403_FORBIDDEN)
    if isinstance(exc, Conflict):
        return Response({exc.field: [exc.message]}, status=status.HTTP_409_CONFLICT)
    return exception_handler(exc, context)
