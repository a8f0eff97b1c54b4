"""``/api/audit/``: the audit trail, read-only (``audit.view_auditentry``), newest first."""

from __future__ import annotations

from rest_framework import viewsets

from audit.filters import AuditEntryFilter
from audit.models import AuditEntry
from audit.serializers import AuditEntrySerializer


class AuditEntryViewSet(viewsets.ReadOnlyModelViewSet):
    queryset = AuditEntry.objects.all()
    serializer_class = AuditEntrySerializer
    permission_model = AuditEntry
    filterset_class = AuditEntryFilter
    search_fields: list[str] = []  # filters by job, actor, action, source and time instead
    ordering_fields = ["id", "at"]
    ordering = ["-at", "-id"]
