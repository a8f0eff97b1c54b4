"""``/api/audit/``: the audit trail, read-only (``audit.view_auditentry``), newest first; and the
API's exception handler, which records refused writes."""

from __future__ import annotations

from typing import Any

from rest_framework import status, viewsets
from rest_framework.permissions import SAFE_METHODS
from rest_framework.response import Response

from audit.filters import AuditEntryFilter
from audit.models import AuditEntry
from audit.serializers import AuditEntrySerializer
from audit.services import audit_refused_write
from core.exceptions import api_exception_handler as core_exception_handler


class AuditEntryViewSet(viewsets.ReadOnlyModelViewSet):
    queryset = AuditEntry.objects.all()
    serializer_class = AuditEntrySerializer
    permission_model = AuditEntry
    filterset_class = AuditEntryFilter
    search_fields: list[str] = []  # filters by job, actor, action, source and time instead
    ordering_fields = ["id", "at"]
    ordering = ["-at", "-id"]


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """The API's errors as ``core.exceptions`` answers them; a write refused with 403 (a missing
    permission, or a service's refusal such as the shell permission) is recorded in the audit
    trail as ``permission_denied``, with the permission it lacked or the refusal's reason."""
    response = core_exception_handler(exc, context)
    request = context.get("request")
    refused = response is not None and response.status_code == status.HTTP_403_FORBIDDEN
    if refused and request is not None and request.method not in SAFE_METHODS:
        permission = getattr(request, "refused_permission", "") or str(getattr(exc, "detail", exc))
        audit_refused_write(method=str(request.method), path=request.path, permission=permission)
    return response
