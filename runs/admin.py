"""Runs in the admin: a read-only record, cheap to list on a large table."""

from __future__ import annotations

import json

from django.contrib import admin
from django.http import HttpRequest

from jobs.secrets import mask_overrides
from runs.models import Run


@admin.register(Run)
class RunAdmin(admin.ModelAdmin):
    list_display = ["id", "job", "trigger", "status", "scheduled_for", "started_at", "duration_ms", "status_code"]
    list_filter = ["status", "trigger"]
    list_select_related = ["job"]
    date_hierarchy = "started_at"
    show_full_result_count = False
    raw_id_fields = ["job", "retry_of"]
    exclude = ["overrides"]
    readonly_fields = ["overrides_masked"]

    @admin.display(description="overrides")
    def overrides_masked(self, run: Run) -> str:
        return json.dumps(mask_overrides(run.overrides), indent=2)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Run | None = None) -> bool:
        return False
