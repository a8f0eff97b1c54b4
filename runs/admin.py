"""Runs in the admin: a read-only record, cheap to list on a large table."""

from __future__ import annotations

import json
from typing import Any

from django.contrib import admin
from django.contrib.admin.views.main import ChangeList
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString

from crontask.admin_utils import BoundedSearchMixin, CappedCountPaginator, badge
from jobs.secrets import mask_overrides
from runs.models import Run

# The columns the list shows. The captured text (output, response body, log, traceback: up to
# CRONTASK_MAX_OUTPUT_BYTES each) is only read on a run's own page.
LIST_COLUMNS = ("id", "job_id", "trigger", "status", "scheduled_for", "started_at", "duration_ms", "status_code")

TEXT_BLOCK = (
    '<pre style="white-space:pre-wrap;max-height:30em;overflow:auto;background:var(--darkened-bg,#f8f8f8);'
    'padding:8px;margin:0;font-family:var(--font-family-monospace,monospace)">{}</pre>'
)


class JobIdFilter(admin.SimpleListFilter):
    """``?job=<id>``: one job's runs (the link under a job's recent runs). No option list: there may be
    a hundred thousand jobs."""

    title = "job"
    parameter_name = "job"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        value = self.value()
        return [(value, value)] if value else []

    def queryset(self, request: HttpRequest, queryset: QuerySet[Run]) -> QuerySet[Run]:
        return queryset.filter(job_id=self.value()) if self.value() else queryset


class RunChangeList(ChangeList):
    def get_queryset(self, request: HttpRequest, exclude_parameters: Any = None) -> QuerySet[Run]:
        return super().get_queryset(request, exclude_parameters).only(*LIST_COLUMNS)


@admin.register(Run)
class RunAdmin(BoundedSearchMixin, admin.ModelAdmin):
    list_display = [
        "id",
        "job_link",
        "trigger",
        "status_badge",
        "scheduled_for",
        "started_at",
        "duration",
        "status_code",
    ]
    # "started_at" is the admin's date filter (today, past 7 days, this month, this year): fixed
    # ranges over the run_started_idx index. No date_hierarchy: it reads the distinct days of the
    # whole table on every page. No facets: they count every option over the table.
    list_filter = [JobIdFilter, "status", "trigger", "started_at"]
    show_facets = admin.ShowFacets.NEVER
    # job_link needs only job_id, so no join with the jobs table.
    list_select_related = False
    show_full_result_count = False
    paginator = CappedCountPaginator
    list_per_page = 100
    search_fields = ["=job__id"]
    fieldsets = [
        (None, {"fields": ["job_link", "status_badge", "trigger", "attempt", "retry_of_link", "target", "error"]}),
        ("Timing", {"fields": ["scheduled_for", "queued_at", "started_at", "finished_at", "duration"]}),
        ("HTTP", {"fields": ["status_code", "response_body_block"]}),
        ("Python", {"fields": ["result_block", "log_output_block"]}),
        ("Shell", {"fields": ["exit_code", "output_block"]}),
        ("Failure", {"fields": ["traceback_block"]}),
        ("Delivery", {"fields": ["overrides_masked", "sent_at", "worker", "celery_task_id"]}),
    ]
    readonly_fields = [
        "job_link", "status_badge", "trigger", "attempt", "retry_of_link", "target", "error", "scheduled_for",
        "queued_at", "started_at", "finished_at", "duration", "status_code", "response_body_block", "result_block",
        "log_output_block", "exit_code", "output_block", "traceback_block", "overrides_masked", "sent_at", "worker",
        "celery_task_id",
    ]  # fmt: skip

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return RunChangeList

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Run | None = None) -> bool:
        return False

    @admin.display(description="job", ordering="job_id")
    def job_link(self, run: Run) -> SafeString:
        return format_html('<a href="{}">{}</a>', reverse("admin:jobs_job_change", args=[run.job_id]), run.job_id)

    @admin.display(description="retry of")
    def retry_of_link(self, run: Run) -> SafeString | str:
        if not run.retry_of_id:
            return "—"
        return format_html(
            '<a href="{}">run {}</a>', reverse("admin:runs_run_change", args=[run.retry_of_id]), run.retry_of_id
        )

    @admin.display(description="status", ordering="status")
    def status_badge(self, run: Run) -> SafeString:
        return badge(run.status)

    @admin.display(description="duration", ordering="duration_ms")
    def duration(self, run: Run) -> str:
        return f"{run.duration_ms} ms" if run.duration_ms is not None else "—"

    @admin.display(description="response body")
    def response_body_block(self, run: Run) -> SafeString:
        return format_html(TEXT_BLOCK, run.response_body or "—")

    @admin.display(description="result")
    def result_block(self, run: Run) -> SafeString:
        return format_html(TEXT_BLOCK, json.dumps(run.result, indent=2) if run.result is not None else "—")

    @admin.display(description="log output")
    def log_output_block(self, run: Run) -> SafeString:
        return format_html(TEXT_BLOCK, run.log_output or "—")

    @admin.display(description="output")
    def output_block(self, run: Run) -> SafeString:
        return format_html(TEXT_BLOCK, run.output or "—")

    @admin.display(description="traceback")
    def traceback_block(self, run: Run) -> SafeString:
        return format_html(TEXT_BLOCK, run.traceback or "—")

    @admin.display(description="overrides")
    def overrides_masked(self, run: Run) -> SafeString:
        return format_html(TEXT_BLOCK, json.dumps(mask_overrides(run.overrides), indent=2))
