"""The audit trail in the admin: a read-only list (no add, change or delete: it is append-only)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from audit.models import AuditEntry
from core.admin_utils import BoundedSearchMixin, CappedCountPaginator


@admin.register(AuditEntry)
class AuditEntryAdmin(BoundedSearchMixin, admin.ModelAdmin):
    list_display = ["at", "actor", "action", "job_id", "run_id", "source", "client_ip"]
    # "at" gives fixed date ranges over its index; no facets: they count every option over the table.
    list_filter = ["action", "source", "at"]
    show_facets = admin.ShowFacets.NEVER
    show_full_result_count = False
    paginator = CappedCountPaginator
    list_per_page = 100
    search_fields = ["=actor", "=job_id"]
    fields = ["at", "actor", "action", "job_id", "run_id", "source", "client_ip", "reason", "details"]
    readonly_fields = ["at", "actor", "action", "job_id", "run_id", "source", "client_ip", "reason", "details"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
