"""Jobs in the Django admin. Saving, the actions and the buttons all go through jobs.services.

What shows or makes runs (the last run, the recent runs, run now) is added by ``runs.admin``,
whose ``JobAdmin`` extends this one and is the one registered.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import URLPattern, path, reverse
from django.utils.safestring import SafeString
from django_celery_beat import models as beat_models

from core.admin_utils import BoundedSearchMixin, badge
from jobs import services
from jobs.errors import SHELL_PERMISSION, SHELL_REFUSED, JobConflict
from jobs.models import Job
from jobs.secrets import mask_job_data, masked_job, restore_masked
from jobs.triggers import describe_cron

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

# An action over many jobs names at most this many it left unchanged; the rest are counted.
MAX_LISTED = 20
# Where changeform_view leaves a refused save's errors for the form of the second pass.
REFUSED_ATTR = "_crontask_refused"


def schedule_text(job: Job) -> str:
    """The schedule in words: 'every 10 seconds', 'At 09:00, Monday through Friday (Asia/Shanghai)'."""
    if job.trigger == Job.Trigger.CRON:
        return f"{describe_cron(job.cron)} ({job.timezone})"
    if job.trigger == Job.Trigger.INTERVAL:
        return _every(job.interval_seconds or 0)
    if job.trigger == Job.Trigger.DATE:
        return f"once at {job.run_at:%Y-%m-%d %H:%M:%S %Z}" if job.run_at else "once"
    return "by hand"


def _every(seconds: int) -> str:
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds % size == 0 and seconds >= size:
            count = seconds // size
            return f"every {unit}" if count == 1 else f"every {count} {unit}s"
    return "every second" if seconds == 1 else f"every {seconds} seconds"


class JobForm(forms.ModelForm):
    """Secrets (jobs.secrets) are shown masked; sent back masked, they keep their stored value.

    JobAdmin.get_form sets the class attributes per request, so the form refuses what the API
    refuses: shell jobs without the permission, and whatever the services refused on a first try.
    """

    can_manage_shell: bool = False
    service_error: ValidationError | None = None
    #: The page only shows the job (the user may not change it): its fields are rendered from the
    #: instance, not from the form's initial values, so the instance itself is masked.
    read_only: bool = False

    class Meta:
        model = Job
        fields = [
            "id", "name", "description", "status", "kind", "trigger", "cron", "interval_seconds", "run_at",
            "timezone", "url", "method", "headers", "body", "follow_redirects", "handler", "handler_kwargs",
            "command", "timeout_seconds", "max_retries", "retry_backoff_seconds", "concurrency_policy",
            "misfire_grace_seconds",
        ]  # fmt: skip

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Read before _post_clean copies the posted values onto the instance.
        self.stored_kind = self.instance.kind if self.instance.pk else None
        if self.instance.pk:
            self.initial.update(mask_job_data(self.initial))
        if self.instance.pk and self.read_only:
            # Never saved: Django refuses a POST from a user who may not change the job before
            # it builds a form, and job_update reads the stored job afresh anyway.
            for name, value in masked_job(self.instance).items():
                setattr(self.instance, name, value)
        if "status" in self.fields:
            self.fields["status"].choices = [(s.value, s.label) for s in (Job.Status.ACTIVE, Job.Status.PAUSED)]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        # Here, before the model's own checks see a mask in place of a kwarg's value of another
        # type; jobs.services does the same for the API and imports.
        try:
            cleaned.update(restore_masked(cleaned, self.instance if self.instance.pk else None))
        except ValidationError as exc:
            for field, field_messages in _by_field(exc).items():
                self.add_error(field, field_messages)
        # Stricter than "the kind it ends up with": turning someone's shell job into an http job
        # needs the permission too, since it throws their command away.
        if not self.can_manage_shell and Job.Kind.SHELL in (cleaned.get("kind"), self.stored_kind):
            self.add_error("kind" if "kind" in self.fields else None, SHELL_REFUSED)
        if self.service_error is not None:
            for field, field_messages in _by_field(self.service_error).items():
                self.add_error(field if field in self.fields else None, field_messages)
        return cleaned


def _by_field(error: ValidationError) -> dict[str | None, list[str]]:
    if hasattr(error, "error_dict"):
        return {field: ValidationError(errors).messages for field, errors in error.error_dict.items()}
    return {None: error.messages}


# What an action does to one job for a user: None when the job changed, else why it did not. The
# services return a job untouched when there is nothing to do, so before and after are compared here.
JobChange = Callable[[Job, Any], str | None]


class _Refused(Exception):
    """A service refused a save the form had accepted (a past run_at, a duplicate id, …)."""

    def __init__(self, error: ValidationError) -> None:
        super().__init__(error.messages)
        self.error = error


class JobAdmin(BoundedSearchMixin, admin.ModelAdmin):
    form = JobForm
    list_display = [
        "id", "name", "kind", "schedule", "status_badge", "next_run_at", "last_run_at",
        "success_count", "failure_count",
    ]  # fmt: skip
    list_display_links = ["id", "name"]
    list_filter = ["status", "kind", "trigger", "is_system"]
    search_fields = ["id", "name", "shown_target"]  # not url or command: see Job.shown_target
    readonly_fields = [
        "next_run_at", "last_run_at", "last_run_status", "run_count", "success_count", "failure_count",
        "is_system", "created_at", "updated_at",
    ]  # fmt: skip
    fieldsets = [
        (None, {"fields": ["id", "name", "description", "status", "kind"]}),
        ("Schedule", {"fields": ["trigger", "cron", "interval_seconds", "run_at", "timezone"]}),
        ("HTTP request", {"fields": ["url", "method", "headers", "body", "follow_redirects"],
                          "classes": ["ct-kind-http"]}),
        ("Python handler", {"fields": ["handler", "handler_kwargs"], "classes": ["ct-kind-python"]}),
        ("Shell command", {"fields": ["command"], "classes": ["ct-kind-shell"]}),
        ("Policies", {"fields": ["timeout_seconds", "max_retries", "retry_backoff_seconds", "concurrency_policy",
                                 "misfire_grace_seconds"]}),
        ("State", {"fields": ["next_run_at", "last_run_at", "last_run_status", "run_count", "success_count",
                              "failure_count", "is_system", "created_at", "updated_at"]}),
    ]  # fmt: skip
    actions = ["pause_jobs", "resume_jobs", "delete_jobs"]
    list_per_page = 50

    def get_fieldsets(self, request: HttpRequest, obj: Job | None = None) -> list:
        fieldsets = super().get_fieldsets(request, obj)
        return [f for f in fieldsets if f[0] != "State"] if obj is None else fieldsets

    def get_readonly_fields(self, request: HttpRequest, obj: Job | None = None) -> list[str]:
        fields = list(super().get_readonly_fields(request, obj))
        return [*fields, "id"] if obj is not None else fields

    @admin.display(description="schedule")
    def schedule(self, job: Job) -> str:
        return schedule_text(job)

    @admin.display(description="status", ordering="status")
    def status_badge(self, job: Job) -> SafeString:
        return badge(job.status)

    def get_form(self, request: HttpRequest, obj: Job | None = None, change: bool = False, **kwargs: Any) -> Any:
        form = super().get_form(request, obj, change, **kwargs)
        attrs = {
            "can_manage_shell": request.user.has_perm(SHELL_PERMISSION),
            "service_error": getattr(request, REFUSED_ATTR, None),
            # As Django decides whether a change page is read-only (ModelAdmin._changeform_view).
            "read_only": obj is not None and not self.has_change_permission(request, obj),
        }
        return type(form.__name__, (form,), attrs)

    def changeform_view(
        self, request: HttpRequest, object_id: str | None = None, form_url: str = "", extra_context: Any = None
    ) -> HttpResponse:
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except _Refused as refused:
            # The services are where a save is finally checked (past run_at, duplicate id, trigger
            # rules), and they refused after the form passed; their transaction rolled back. Handle
            # the same POST again with their errors put on the form: the admin's own code then
            # renders the page (200, errors by field, as the API's 400 gives them) and saves nothing.
            setattr(request, REFUSED_ATTR, refused.error)
            return super().changeform_view(request, object_id, form_url, extra_context)

    def render_change_form(self, request: HttpRequest, context: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        context["cron_preview_config"] = {"url": reverse("cron-preview"), "handlers_url": reverse("handlers")}
        return super().render_change_form(request, context, *args, **kwargs)

    def save_model(self, request: HttpRequest, obj: Job, form: Any, change: bool) -> None:
        data = {name: form.cleaned_data[name] for name in form.cleaned_data if name in services.EDITABLE_FIELDS}
        try:
            if change:
                saved = services.job_update(job=obj, data=data, actor=request.user)
            else:
                saved = services.job_create(data=data, actor=request.user)
        except PermissionDenied as exc:  # the form checks the kind; the services have the last word
            raise _Refused(ValidationError({"kind": str(exc)})) from exc
        except ValidationError as exc:
            raise _Refused(exc) from exc
        except JobConflict as exc:
            raise _Refused(ValidationError({exc.field: exc.message})) from exc
        obj.pk = saved.pk
        obj.refresh_from_db()

    def delete_model(self, request: HttpRequest, obj: Job) -> None:
        services.job_delete(job=obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Job]) -> None:
        self._each(request, queryset, _delete, "deleted")

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)  # replaced by delete_jobs, which reports system jobs it skipped
        return actions

    @admin.action(description="Delete selected jobs", permissions=["delete"])
    def delete_jobs(self, request: HttpRequest, queryset: QuerySet[Job]) -> None:
        self._each(request, queryset, _delete, "deleted")

    def has_delete_permission(self, request: HttpRequest, obj: Job | None = None) -> bool:
        return super().has_delete_permission(request, obj) and not (obj is not None and obj.is_system)

    @admin.action(description="Pause selected jobs", permissions=["change"])
    def pause_jobs(self, request: HttpRequest, queryset: QuerySet[Job]) -> None:
        self._each(request, queryset, _pause, "paused")

    @admin.action(description="Resume selected jobs", permissions=["change"])
    def resume_jobs(self, request: HttpRequest, queryset: QuerySet[Job]) -> None:
        self._each(request, queryset, _resume, "resumed")

    def get_urls(self) -> list[URLPattern]:
        button = self.admin_site.admin_view
        return [
            path("<path:object_id>/pause/", button(self.pause_view), name="jobs_job_pause"),
            path("<path:object_id>/resume/", button(self.resume_view), name="jobs_job_resume"),
            *super().get_urls(),
        ]

    def pause_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        return self._button(request, object_id, _pause, "paused")

    def resume_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        return self._button(request, object_id, _resume, "resumed")

    def _button(self, request: HttpRequest, object_id: str, change: JobChange, verb: str) -> HttpResponse:
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        job = get_object_or_404(Job, pk=object_id)
        if not self.has_change_permission(request, job):
            return HttpResponseRedirect(reverse("admin:jobs_job_change", args=[job.pk]))
        self._each(request, Job.objects.filter(pk=job.pk), change, verb)
        return HttpResponseRedirect(reverse("admin:jobs_job_change", args=[job.pk]))

    def _each(self, request: HttpRequest, queryset: QuerySet[Job], change: JobChange, verb: str) -> None:
        """Apply ``change`` to each job; count those it changed and name the others with the reason."""
        changed, unchanged = 0, []
        for job in queryset:
            try:
                reason = change(job, request.user)
            except ValidationError as exc:
                reason = " ".join(exc.messages)
            except PermissionDenied as exc:
                reason = str(exc)
            except JobConflict as exc:
                reason = exc.message
            if reason is None:
                changed += 1
            else:
                unchanged.append(f"{job.pk}: {reason}")
        self.message_user(request, f"{changed} job(s) {verb}.", messages.SUCCESS if changed else messages.INFO)
        if unchanged:
            more = len(unchanged) - MAX_LISTED
            listed = " | ".join(unchanged[:MAX_LISTED]) + (f" | and {more} more" if more > 0 else "")
            self.message_user(request, f"Not changed: {listed}", messages.WARNING)


def _pause(job: Job, actor: Any) -> str | None:
    return None if services.job_pause(job=job).status != job.status else "already paused"


def _resume(job: Job, actor: Any) -> str | None:
    after = services.job_resume(job=job, actor=actor)
    if after.status == Job.Status.ACTIVE and job.status != Job.Status.ACTIVE:
        return None
    if after.status == Job.Status.COMPLETED:  # was already, or its one run happened before the pause
        return "completed (its one run is done; give it a new date to run it again)"
    return "already active"


def _delete(job: Job, actor: Any) -> str | None:
    services.job_delete(job=job)
    return None
