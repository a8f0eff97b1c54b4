"""Jobs in the Django admin. Saving and every action go through jobs.services."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django_celery_beat import models as beat_models

from jobs import services
from jobs.errors import JobConflict
from jobs.models import Job
from jobs.secrets import keep_masked_headers, mask_headers

# django-celery-beat's rows are derived from jobs (``manage.py sync_schedules`` rebuilds them):
# editing them by hand would be overwritten, so they are not offered.
for _model in (
    beat_models.PeriodicTask,
    beat_models.IntervalSchedule,
    beat_models.CrontabSchedule,
    beat_models.SolarSchedule,
    beat_models.ClockedSchedule,
):
    if admin.site.is_registered(_model):
        admin.site.unregister(_model)


class JobForm(forms.ModelForm):
    """Secret header values are shown masked; sent back masked, they keep their stored value."""

    class Meta:
        model = Job
        fields = [
            "id",
            "name",
            "description",
            "kind",
            "trigger",
            "cron",
            "interval_seconds",
            "run_at",
            "timezone",
            "url",
            "method",
            "headers",
            "body",
            "handler",
            "handler_kwargs",
            "command",
            "timeout_seconds",
            "max_retries",
            "retry_backoff_seconds",
            "concurrency_policy",
            "misfire_grace_seconds",
            "status",
        ]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk and "headers" in self.initial:
            self.initial["headers"] = mask_headers(self.initial["headers"])

    def clean_headers(self) -> Any:
        headers = self.cleaned_data.get("headers")
        if isinstance(headers, dict) and self.instance.pk:
            return keep_masked_headers(headers, self.instance.headers or {})
        return headers


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    form = JobForm
    list_display = [
        "id",
        "name",
        "kind",
        "trigger",
        "schedule_display",
        "status",
        "next_run_at",
        "last_run_at",
        "last_run_status",
        "success_count",
        "failure_count",
    ]
    list_filter = ["status", "kind", "trigger", "last_run_status"]
    search_fields = ["id", "name", "url", "handler", "command"]
    readonly_fields = [
        "next_run_at",
        "last_run_at",
        "last_run_status",
        "run_count",
        "success_count",
        "failure_count",
        "is_system",
        "created_at",
        "updated_at",
    ]
    actions = ["pause_jobs", "resume_jobs", "run_jobs_now"]

    @admin.display(description="schedule")
    def schedule_display(self, job: Job) -> str:
        if job.trigger == Job.Trigger.CRON:
            return f"{job.cron} ({job.timezone})"
        if job.trigger == Job.Trigger.INTERVAL:
            return f"every {job.interval_seconds} s"
        if job.trigger == Job.Trigger.DATE:
            return f"once at {job.run_at:%Y-%m-%d %H:%M:%S %Z}"
        return "by hand"

    def render_change_form(self, request: HttpRequest, context: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        context["cron_preview_config"] = {"url": reverse("cron-preview")}
        return super().render_change_form(request, context, *args, **kwargs)

    def get_readonly_fields(self, request: HttpRequest, obj: Job | None = None) -> list[str]:
        fields = list(super().get_readonly_fields(request, obj))
        return [*fields, "id"] if obj is not None else fields

    def save_model(self, request: HttpRequest, obj: Job, form: Any, change: bool) -> None:
        data = {name: form.cleaned_data[name] for name in form.cleaned_data if name in services.EDITABLE_FIELDS}
        saved = services.job_update(job=obj, data=data) if change else services.job_create(data=data)
        obj.pk = saved.pk
        obj.refresh_from_db()

    def delete_model(self, request: HttpRequest, obj: Job) -> None:
        services.job_delete(job=obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Job]) -> None:
        self._each(request, queryset, services.job_delete, "deleted")

    @admin.action(description="Pause selected jobs", permissions=["change"])
    def pause_jobs(self, request: HttpRequest, queryset: QuerySet[Job]) -> None:
        self._each(request, queryset, services.job_pause, "paused")

    @admin.action(description="Resume selected jobs", permissions=["change"])
    def resume_jobs(self, request: HttpRequest, queryset: QuerySet[Job]) -> None:
        self._each(request, queryset, services.job_resume, "resumed")

    @admin.action(description="Run selected jobs now", permissions=["change"])
    def run_jobs_now(self, request: HttpRequest, queryset: QuerySet[Job]) -> None:
        self._each(request, queryset, services.job_run_now, "queued to run")

    def _each(self, request: HttpRequest, queryset: QuerySet[Job], service: Any, verb: str) -> None:
        done, failed = 0, []
        for job in queryset:
            try:
                service(job=job)
                done += 1
            except (ValidationError, JobConflict) as exc:
                failed.append(f"{job.pk}: {'; '.join(getattr(exc, 'messages', [str(exc)]))}")
        self.message_user(request, f"{done} job(s) {verb}.", messages.SUCCESS)
        if failed:
            self.message_user(request, "Not changed: " + " | ".join(failed), messages.WARNING)
