"""Jobs in the Django admin. Saving, the actions and the buttons all go through jobs.services.

What shows or makes runs (the last run, the recent runs, run now) is added by ``runs.admin``,
whose ``JobAdmin`` extends this one and is the one registered.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from contextlib import nullcontext
from datetime import datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, Any, cast

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin import helpers, widgets
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.html import escape, format_html, format_html_join
from django.utils.safestring import SafeString
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext, ngettext_lazy
from django_celery_beat import models as beat_models

from audit.services import audit_context, audit_record, audit_refused_write
from core import origin, times
from core.admin_utils import BoundedSearchMixin, RefusedSaveMixin, SaveRefused, ZonedSplitDateTimeField, badge
from jobs import handlers, services
from jobs.admin_pause import JobActionForm, pause_jobs_until
from jobs.admin_tags import TagListFilter, TagsFormField
from jobs.admin_workflow import POLICIES_TITLE, WorkflowAdminMixin
from jobs.errors import JobConflict, ShellNotPermitted
from jobs.models import EDITABLE_FIELDS, EDITABLE_PARTS, STATE_FIELDS, Job, JobVersion
from jobs.preparation import clone_data, cloned_fields, job_prepare
from jobs.secrets import mask_job_data, masked_job
from jobs.triggers import describe_cron
from jobs.versions import changed_since, deleted_jobs, masked_definition, versions_with_diffs

if TYPE_CHECKING:
    from jobs.preparation import Actor

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
#: What an action over jobs says it did, by its verb (``JobAdmin._each``), in whole sentences for
#: the translators, with the plural of the count.
DONE = {
    "paused": ngettext_lazy("%(n)d job paused.", "%(n)d jobs paused.", "n"),
    "resumed": ngettext_lazy("%(n)d job resumed.", "%(n)d jobs resumed.", "n"),
    "deleted": ngettext_lazy("%(n)d job deleted.", "%(n)d jobs deleted.", "n"),
    "queued to run": ngettext_lazy("%(n)d job queued to run.", "%(n)d jobs queued to run.", "n"),
    "paused until": ngettext_lazy("%(n)d job paused until %(until)s.", "%(n)d jobs paused until %(until)s.", "n"),
}


def _part(part: str) -> tuple[str, ...]:
    """The editable fields of one part of a job (``jobs.models.EDITABLE_PARTS``): a fieldset's."""
    return tuple(name for name, owner in EDITABLE_PARTS.items() if owner == part)


def schedule_text(job: Job) -> str:
    """The schedule in words: 'every 10 seconds', 'At 09:00, Monday through Friday (Asia/Shanghai)'."""
    if job.trigger == Job.Trigger.CRON:
        return f"{describe_cron(job.cron)} ({job.timezone})"
    if job.trigger == Job.Trigger.INTERVAL:
        return _every(job.interval_seconds or 0)
    if job.trigger == Job.Trigger.DATE:
        if not job.run_at:
            return _("once")
        return _("once at %(time)s") % {"time": times.format_time(job.run_at, times.zone_named(job.timezone))}
    return _("by hand")


def _every(seconds: int) -> str:
    if seconds % 86400 == 0 and seconds >= 86400:
        return ngettext("every day", "every %(n)d days", seconds // 86400) % {"n": seconds // 86400}
    if seconds % 3600 == 0 and seconds >= 3600:
        return ngettext("every hour", "every %(n)d hours", seconds // 3600) % {"n": seconds // 3600}
    if seconds % 60 == 0 and seconds >= 60:
        return ngettext("every minute", "every %(n)d minutes", seconds // 60) % {"n": seconds // 60}
    return ngettext("every second", "every %(n)d seconds", seconds) % {"n": seconds}


def _handler_choices() -> list[handlers.HandlerInfo]:
    try:
        return handlers.list_handlers()
    except Exception:  # noqa: BLE001 - a broken script must not take the form down; the API names it
        return []


def _handler_label(info: handlers.HandlerInfo) -> str:
    """``Check a URL — url: str, timeout: int = 10``: what the list shows beside a handler."""
    any_type = _("any")
    params = ", ".join(
        f"{p.name}: {p.type or any_type}" + ("" if p.required else f" = {p.default!r}") for p in info.parameters
    )
    return " — ".join(part for part in (info.description or info.name, params) if part)


class HandlerInput(forms.TextInput):
    """A text box with the registry's handlers (``/api/handlers/``'s) offered as a datalist."""

    def render(self, name: str, value: Any, attrs: dict[str, Any] | None = None, renderer: Any = None) -> SafeString:
        box = super().render(name, value, {**(attrs or {}), "list": "ct-handlers", "size": 60}, renderer)
        options = format_html_join(
            "", '<option value="{}">{}</option>', ((h.handler, _handler_label(h)) for h in _handler_choices())
        )
        return format_html('{}<datalist id="ct-handlers">{}</datalist>', box, options)


class JobForm(forms.ModelForm):
    """The fields a client sets, checked by the one path (``jobs.preparation.job_prepare``) where a
    ModelForm checks its instance, so that whatever it refuses (a past run_at, the shell permission,
    a duplicate id) is an error on the form, in the API's words.

    Secrets (jobs.secrets) are shown masked; sent back masked, they keep their stored value.
    ``actor``: the user who saves (``JobAdmin.get_form`` gives it). ``clone_of``: the job a new one
    copies (the add page's ``?clone=<id>``): its masked secrets stand for that job's values.
    """

    # Not the job's: why, recorded on the version the save makes (jobs.versions).
    change_reason = forms.CharField(
        label=gettext_lazy("Reason for this change"),
        required=False,
        max_length=origin.MAX_REASON,
        widget=forms.TextInput(attrs={"size": 80}),
        help_text=gettext_lazy("Optional: kept with this version in the job's history."),
    )
    tags = TagsFormField()

    run_at = ZonedSplitDateTimeField(label=gettext_lazy("Run at"), required=False, widget=widgets.AdminSplitDateTime)

    class Meta:
        model = Job
        fields = list(EDITABLE_FIELDS)
        widgets = {"handler": HandlerInput}

    def __init__(
        self,
        *args: Any,
        actor: Actor = None,
        clone_of: Job | None = None,
        request: HttpRequest | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.actor = actor
        self.request = request  # to record a refused shell job in the audit trail
        self.clone_of = clone_of
        if self.instance.pk:
            self.initial.update(mask_job_data(self.initial))
        if isinstance(status := self.fields.get("status"), forms.ChoiceField):
            status.choices = [(s.value, s.label) for s in (Job.Status.ACTIVE, Job.Status.PAUSED)]
        if (handler := self.fields.get("handler")) is not None:
            # The admin writes help texts as HTML: '<name>' would vanish.
            handler.help_text = escape(handler.help_text) + " " + escape(_("Pick one of the list or type it."))
        zone_name = self.initial.get("timezone") or self.instance.timezone or settings.TIME_ZONE
        if isinstance(run_at := self.fields.get("run_at"), ZonedSplitDateTimeField):
            run_at.zone = times.zone_named(zone_name)
            run_at.help_text = format_html(
                '{} <span id="ct-run-at-zone">{}</span>', _("For a one-off job, in the job's time zone:"), zone_name
            )

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        run_at = cleaned.get("run_at")
        if isinstance(run_at, datetime) and timezone.is_naive(run_at):
            # Entered in the job's zone (the form's "time zone" box), as the form says.
            zone = times.zone_named(cleaned.get("timezone") or settings.TIME_ZONE)
            cleaned["run_at"] = timezone.make_aware(run_at, zone)
        return cleaned

    def _post_clean(self) -> None:
        # Not ModelForm's (copy the values onto the instance, full_clean it): the job prepared from
        # them, on the stored one when it is changed, becomes the instance save_model saves.
        data = {name: value for name, value in self.cleaned_data.items() if name in EDITABLE_FIELDS}
        stored = None if self.instance._state.adding else self.instance
        try:
            if stored is None and self.clone_of is not None:
                data = clone_data(source=self.clone_of, data=data)
            self.instance = job_prepare(data=data, instance=stored, actor=self.actor)
        except ValidationError as exc:
            for field, messages in _by_field(exc).items():
                self._error_on(field, messages)
        except ShellNotPermitted as exc:
            if self.request is not None:
                audit_denied(self.request, exc)
            self._error_on("kind", [str(exc)])
        except JobConflict as exc:
            self._error_on(exc.field, [exc.message])

    def _error_on(self, field: str | None, messages: list[str]) -> None:
        self.add_error(field if field in self.fields else None, messages)


def _by_field(error: ValidationError) -> dict[str | None, list[str]]:
    if hasattr(error, "error_dict"):
        return {field: ValidationError(errors).messages for field, errors in error.error_dict.items()}
    return {None: error.messages}


# What an action does to one job for a user: None when the job changed, else why it did not. The
# services return a job untouched when there is nothing to do, so before and after are compared here.
JobChange = Callable[[Job, "Actor"], str | None]


class ChangedRecentlyFilter(admin.SimpleListFilter):
    """Jobs whose definition changed (a version recorded) in the last day."""

    title = gettext_lazy("changed")
    parameter_name = "changed"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin[Any]) -> list[tuple[str, str]]:
        return [("1d", _("in the last day"))]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Job]) -> QuerySet[Job]:
        if self.value() == "1d":
            return queryset.filter(pk__in=changed_since(timezone.now() - timedelta(days=1)).values("job_id"))
        return queryset


STATE_TITLE = gettext_lazy("State")
#: The state the job page shows: its next and last fires in both zones (``JobAdmin.next_fire``).
STATE_SHOWN: tuple[str, ...] = tuple(
    {"next_run_at": "next_fire", "last_run_at": "last_fire", "last_run_status": "last_run_status_shown"}.get(name, name)
    for name in STATE_FIELDS
)


def both_zones(moment: datetime | None, job: Job) -> SafeString:
    """The moment in the reader's zone (and how far), then in the job's own zone."""
    if moment is None:
        return format_html("{}", times.EMPTY)
    own = times.zone_named(job.timezone)
    return format_html(
        '{}<div class="ct-sub ct-job-zone">{} {} ({})</div>',
        times.time_html(moment),
        _("In the job's zone:"),
        times.time_html(moment, own, with_relative=False),
        job.timezone,
    )


class JobAdmin(WorkflowAdminMixin, RefusedSaveMixin, BoundedSearchMixin, admin.ModelAdmin):
    form = JobForm
    list_display = [
        "id", "name", "kind", "schedule", "status_badge", "next_run_at", "last_run_at",
        "success_count", "failure_count",
    ]  # fmt: skip
    list_display_links = ["id", "name"]
    list_filter = ["status", "kind", "trigger", "is_system", TagListFilter, ChangedRecentlyFilter]
    search_fields = ["id", "name", "shown_target"]  # not url or command: see Job.shown_target
    readonly_fields = [*STATE_FIELDS, "next_fire", "last_fire", "last_run_status_shown"]
    fieldsets = [
        (None, {"fields": _part("job")}),
        (gettext_lazy("Schedule"), {"fields": _part("schedule")}),
        (gettext_lazy("HTTP request"), {"fields": _part("http"), "classes": ["ct-kind-http"]}),
        (gettext_lazy("Python handler"), {"fields": _part("python"), "classes": ["ct-kind-python"]}),
        (gettext_lazy("Shell command"), {"fields": _part("shell"), "classes": ["ct-kind-shell"]}),
        (POLICIES_TITLE, {"fields": _part("policies")}),
        (STATE_TITLE, {"fields": STATE_SHOWN}),
        (gettext_lazy("Change"), {"fields": ["change_reason"]}),
    ]
    actions = ["pause_jobs", pause_jobs_until, "resume_jobs", "delete_jobs"]
    action_form = JobActionForm  # the date picker of "Pause until…" (jobs.admin_pause)
    list_per_page = 50

    def get_fieldsets(self, request: HttpRequest, obj: Job | None = None) -> list[Any]:
        fieldsets = list(super().get_fieldsets(request, obj))
        return [f for f in fieldsets if f[0] != STATE_TITLE] if obj is None else fieldsets

    def get_readonly_fields(self, request: HttpRequest, obj: Job | None = None) -> list[str]:
        fields = list(super().get_readonly_fields(request, obj))
        return [*fields, "id"] if obj is not None else fields

    @admin.display(description=gettext_lazy("schedule"))
    def schedule(self, job: Job) -> str:
        return schedule_text(job)

    @admin.display(description=gettext_lazy("next run at"))
    def next_fire(self, job: Job) -> SafeString:
        return both_zones(job.next_run_at, job)

    @admin.display(description=gettext_lazy("last run at"))
    def last_fire(self, job: Job) -> SafeString:
        return both_zones(job.last_run_at, job)

    @admin.display(description=gettext_lazy("last run status"))
    def last_run_status_shown(self, job: Job) -> SafeString | str:
        return badge(job.last_run_status) if job.last_run_status else times.EMPTY

    @admin.display(description=gettext_lazy("status"), ordering="status")
    def status_badge(self, job: Job) -> SafeString:
        if job.status == Job.Status.PAUSED and job.paused_until is not None:
            return format_html("{} {} {}", badge(job.status), _("until"), times.time_html(job.paused_until))
        return badge(job.status)

    def get_form(self, request: HttpRequest, obj: Job | None = None, change: bool = False, **kwargs: Any) -> Any:
        # The form is given the user who saves: the one path checks what they may do (shell jobs).
        # (Any: Django calls what this returns like a form class; a partial of one is not a type.)
        form = cast(type[JobForm], super().get_form(request, obj, change, **kwargs))
        clone_of = self._clone_source(request) if obj is None else None
        return partial(form, actor=request.user, clone_of=clone_of, request=request)

    def _clone_source(self, request: HttpRequest) -> Job | None:
        """The job the add page copies: ``?clone=<id>`` (the job page's Clone link), if it exists."""
        source_id = request.GET.get("clone")
        if not source_id or not request.user.has_perm("jobs.change_job"):  # a clone carries the secrets
            return None
        return Job.objects.filter(pk=source_id).first()

    def get_changeform_initial_data(self, request: HttpRequest) -> dict[str, Any]:
        # A clone's form starts as the source's definition, its secrets masked as on the source's
        # page (never written into the page); saved, each mask takes the source's stored value
        # (JobForm.clone_of). The id is left for the user to give.
        initial = super().get_changeform_initial_data(request)
        source = self._clone_source(request)
        if source is not None:
            initial.update(mask_job_data(cloned_fields(source)))
        elif request.GET.get("clone"):
            self.message_user(
                request, _("There is no job %(id)r to copy.") % {"id": request.GET["clone"]}, messages.WARNING
            )
        return initial

    def get_object(self, request: HttpRequest, object_id: str, from_field: str | None = None) -> Job | None:
        job = super().get_object(request, object_id, from_field)
        if job is not None and not self.has_change_permission(request, job):
            # The page only shows the job, rendered from the instance: so the instance is masked.
            # It is never saved: Django refuses such a user's POST before it builds a form, and
            # deleting (with the delete permission alone) goes by its id.
            for name, value in masked_job(job).items():
                setattr(job, name, value)
        return job

    def render_change_form(self, request: HttpRequest, context: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        context["cron_preview_config"] = {
            "url": reverse("cron-preview"),
            "draft_url": reverse("draft-preview"),  # the fires after jitter, DST policy and calendars
            "handlers_url": reverse("handlers"),
        }
        return super().render_change_form(request, context, *args, **kwargs)

    def save_model(self, request: HttpRequest, obj: Job, form: forms.ModelForm, change: bool) -> None:
        # The form prepared the job (JobForm._post_clean); the service prepares it again under its
        # lock, and saves it. What changed in between (the same id taken meanwhile, run_at now
        # past, the one-off completed) is refused there: see changeform_view.
        data = {name: value for name, value in form.cleaned_data.items() if name in EDITABLE_FIELDS}
        given = form.cleaned_data.get("change_reason") or ""
        try:
            with origin.reason(given) if given else nullcontext():
                saved = self._save(request, obj, form, data, change=change)
        except (ValidationError, PermissionDenied, JobConflict) as exc:
            raise SaveRefused(_reason(exc)) from exc
        obj.pk = saved.pk
        obj.refresh_from_db()

    def _save(
        self, request: HttpRequest, obj: Job, form: forms.ModelForm, data: dict[str, Any], *, change: bool
    ) -> Job:
        if change:
            return services.job_update(job=obj, data=data, actor=request.user)
        if (source := getattr(form, "clone_of", None)) is not None:
            return services.job_clone(source=source, data=data, actor=request.user)
        return services.job_create(data=data, actor=request.user)

    def save_refused(self, request: HttpRequest, refused: SaveRefused) -> None:
        if isinstance(refused.__cause__, PermissionDenied):
            audit_denied(request, refused.__cause__)

    def delete_model(self, request: HttpRequest, obj: Job) -> None:
        services.job_delete(job=obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Job]) -> None:
        self._each(request, queryset, _delete, "deleted")

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)  # replaced by delete_jobs, which reports system jobs it skipped
        return actions

    @admin.action(description=gettext_lazy("Delete selected jobs"), permissions=["delete"])
    def delete_jobs(self, request: HttpRequest, queryset: QuerySet[Job]) -> TemplateResponse | None:
        """Asks first: a page listing the jobs and how many runs go with each; its "Yes" posts back
        with ``post=yes``, and the jobs are deleted through the service."""
        if request.POST.get("post") == "yes":
            self._each(request, queryset, _delete, "deleted", bulk="delete")
            return None
        jobs = list(queryset.order_by("pk")[:1000])
        counts = self.stored_runs(jobs)
        rows = [(job, counts.get(job.pk, 0)) for job in jobs]
        context = {
            **self.admin_site.each_context(request),
            "title": _("Are you sure?"),
            "subtitle": None,
            "opts": self.model._meta,
            "rows": rows,
            "deletable": sum(1 for job, _count in rows if not job.is_system),
            "total_runs": sum(count for job, count in rows if not job.is_system),
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            "media": self.media,
        }
        return TemplateResponse(request, "admin/jobs/job/delete_selected_confirmation.html", context)

    def stored_runs(self, jobs: list[Job]) -> dict[str, int]:
        """How many runs each job has, deleted with it (``runs.admin`` counts the stored rows; here,
        below the runs, the job's own counter)."""
        return {job.pk: job.run_count for job in jobs}

    def has_delete_permission(self, request: HttpRequest, obj: Job | None = None) -> bool:
        return super().has_delete_permission(request, obj) and not (obj is not None and obj.is_system)

    @admin.action(description=gettext_lazy("Pause selected jobs"), permissions=["change"])
    def pause_jobs(self, request: HttpRequest, queryset: QuerySet[Job]) -> None:
        self._each(request, queryset, _pause, "paused", bulk="pause")

    @admin.action(description=gettext_lazy("Resume selected jobs"), permissions=["change"])
    def resume_jobs(self, request: HttpRequest, queryset: QuerySet[Job]) -> None:
        self._each(request, queryset, _resume, "resumed", bulk="resume")

    def get_urls(self) -> list[URLPattern]:
        button = self.admin_site.admin_view
        return [
            path("deleted/", button(self.deleted_view), name="jobs_job_deleted"),
            path("<path:object_id>/versions/<int:number>/revert/", button(self.revert_view), name="jobs_job_revert"),
            path("<path:object_id>/pause/", button(self.pause_view), name="jobs_job_pause"),
            path("<path:object_id>/resume/", button(self.resume_view), name="jobs_job_resume"),
            *super().get_urls(),
        ]

    def history_view(
        self, request: HttpRequest, object_id: str, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        """The job's History: its versions (jobs.versions), newest first, each with the fields it
        changed side by side, secrets masked, and a button to revert to it. A deleted job's too."""
        job = Job.objects.filter(pk=object_id).first()
        if not (self.has_view_permission(request, job) or self.has_change_permission(request, job)):
            raise PermissionDenied
        page = _page_number(request.GET.get("page"))
        offset = (page - 1) * HISTORY_PAGE
        shown = versions_with_diffs(object_id, offset=offset, limit=HISTORY_PAGE + 1)
        more = len(shown) > HISTORY_PAGE
        shown = shown[:HISTORY_PAGE]
        if job is None and not shown and page == 1:
            raise Http404(_("No job %(id)r and no versions of one.") % {"id": object_id})
        may_revert = job is not None and self.has_change_permission(request, job)
        rows = [
            {
                "version": version,
                "diff": [
                    (name, "—" if version.action in NEW_VERSIONS else _shown(c["before"]), _shown(c["after"]))
                    for name, c in diff.items()
                ],
                # the newest version is the job as it is: reverting to it would change nothing
                "can_revert": may_revert and offset + index > 0 and version.action != JobVersion.Action.DELETE,
            }
            for index, (version, diff) in enumerate(shown)
        ]
        context = {
            **self.admin_site.each_context(request),
            "title": _("History of %(job)s") % {"job": job or object_id},
            "subtitle": None,
            "object_id": object_id,
            "job": job,
            "rows": rows,
            "previous_page": page - 1 if page > 1 else None,
            "next_page": page + 1 if more else None,
            "opts": self.model._meta,
            "has_view_permission": True,
            **(extra_context or {}),
        }
        return TemplateResponse(request, "admin/jobs/job/versions.html", context)

    def revert_view(self, request: HttpRequest, object_id: str, number: int) -> HttpResponse:
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        job = get_object_or_404(Job, pk=object_id)
        if not self.has_change_permission(request, job):
            raise PermissionDenied
        given = request.POST.get("change_reason", "")[: origin.MAX_REASON]
        try:
            with origin.reason(given) if given else nullcontext():
                services.job_revert(job=job, number=number, actor=request.user)
        except JobVersion.DoesNotExist:
            raise Http404(_("Job %(id)r has no version %(number)d.") % {"id": object_id, "number": number}) from None
        except (ValidationError, PermissionDenied, JobConflict) as exc:
            audit_denied(request, exc)
            self.message_user(request, _("Not reverted: %(reason)s") % {"reason": _reason(exc)}, messages.ERROR)
        else:
            self.message_user(
                request,
                _("Reverted %(id)s to version %(number)d.") % {"id": job.pk, "number": number},
                messages.SUCCESS,
            )
        return HttpResponseRedirect(reverse("admin:jobs_job_history", args=[job.pk]))

    def deleted_view(self, request: HttpRequest) -> HttpResponse:
        """Deleted jobs whose versions are kept (CRONTASK_VERSION_RETENTION_DAYS), each with a Restore
        button (POST, the add permission): back from its last version, paused."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        if request.method == "POST":
            if not self.has_add_permission(request):
                raise PermissionDenied
            job_id = request.POST.get("id", "")
            try:
                job = services.job_restore(job_id=job_id, actor=request.user)
            except JobVersion.DoesNotExist:
                self.message_user(
                    request, _("No versions of a job %(id)r to restore.") % {"id": job_id}, messages.ERROR
                )
            except (ValidationError, PermissionDenied, JobConflict) as exc:
                audit_denied(request, exc)
                self.message_user(request, _("Not restored: %(reason)s") % {"reason": _reason(exc)}, messages.ERROR)
            else:
                self.message_user(request, _("Restored %(id)s, paused.") % {"id": job.pk}, messages.SUCCESS)
                return HttpResponseRedirect(reverse("admin:jobs_job_change", args=[job.pk]))
            return HttpResponseRedirect(reverse("admin:jobs_job_deleted"))
        rows = [(version, masked_definition(version)) for version in deleted_jobs()[:500]]
        context = {
            **self.admin_site.each_context(request),
            "title": _("Deleted jobs"),
            "subtitle": None,
            "rows": rows,
            "opts": self.model._meta,
            "can_restore": self.has_add_permission(request),
        }
        return TemplateResponse(request, "admin/jobs/job/deleted.html", context)

    def pause_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        return self._button(request, object_id, _pause, "paused")

    def resume_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        return self._button(request, object_id, _resume, "resumed")

    def _button(self, request: HttpRequest, object_id: str, change: JobChange, verb: str) -> HttpResponse:
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        job = get_object_or_404(Job, pk=object_id)
        if not self.has_change_permission(request, job):
            audit_denied(request, PermissionDenied("jobs.change_job"))
            return HttpResponseRedirect(reverse("admin:jobs_job_change", args=[job.pk]))
        self._each(request, Job.objects.filter(pk=job.pk), change, verb)
        return HttpResponseRedirect(reverse("admin:jobs_job_change", args=[job.pk]))

    def _each(
        self,
        request: HttpRequest,
        queryset: QuerySet[Job],
        change: JobChange,
        verb: str,
        *,
        bulk: str = "",
        said: Mapping[str, str] | None = None,
    ) -> None:
        """Apply ``change`` to each job; count those it changed and name the others with the reason.
        ``bulk``: the action's name, when the user chose it for the jobs ticked in the list: each
        job's audit entry says so, and one ``bulk`` entry records the results (as the API's bulk)."""
        changed, unchanged, results = 0, [], []
        with audit_context(bulk=bulk) if bulk else nullcontext():
            for job in queryset:
                try:
                    reason = change(job, request.user)
                except (ValidationError, PermissionDenied, JobConflict) as exc:
                    audit_denied(request, exc)
                    reason = _reason(exc)
                results.append({"id": job.pk, "ok": reason is None, **({"error": reason} if reason else {})})
                if reason is None:
                    changed += 1
                else:
                    unchanged.append(f"{job.pk}: {reason}")
        if bulk:
            audit_record(action="bulk", details={"action": bulk, "results": results})
        done = DONE[verb] % {"n": changed, **(said or {})}
        self.message_user(request, done, messages.SUCCESS if changed else messages.INFO)
        if unchanged:
            more = len(unchanged) - MAX_LISTED
            listed = " | ".join(unchanged[:MAX_LISTED]) + (_(" | and %(n)d more") % {"n": more} if more > 0 else "")
            self.message_user(request, _("Not changed: %(jobs)s") % {"jobs": listed}, messages.WARNING)


#: Versions on a page of a job's History (``?page=2`` for the older ones).
HISTORY_PAGE = 50


def _page_number(given: str | None) -> int:
    try:
        return max(1, int(given or 1))
    except ValueError:
        return 1


# Versions that differ from nothing before them: their "before" column is blank, not nulls.
NEW_VERSIONS = (JobVersion.Action.CREATE, JobVersion.Action.RESTORE)


def _shown(value: Any) -> str:
    """A definition's value in a diff's cell: text as it is, the rest as JSON (null, numbers, objects)."""
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def audit_denied(request: HttpRequest, exc: Exception) -> None:
    """A write the services refused the user for want of a permission (not for bad input), in the
    audit trail as the API's refusals are. Call it outside the refused change's transaction."""
    if isinstance(exc, PermissionDenied):
        audit_refused_write(method=str(request.method), path=request.path, permission=str(exc) or "permission denied")


def _reason(exc: ValidationError | PermissionDenied | JobConflict) -> str:
    if isinstance(exc, ValidationError):
        return " ".join(exc.messages)
    if isinstance(exc, JobConflict):
        return exc.message
    return str(exc)


def _pause(job: Job, actor: Actor) -> str | None:
    return None if services.job_pause(job=job).status != job.status else _("already paused")


def _resume(job: Job, actor: Actor) -> str | None:
    after = services.job_resume(job=job, actor=actor)
    if after.status == Job.Status.ACTIVE and job.status != Job.Status.ACTIVE:
        return None
    if after.status == Job.Status.COMPLETED:  # was already, or its one run happened before the pause
        return _("completed (its one run is done; give it a new date to run it again)")
    return _("already active")


def _delete(job: Job, actor: Actor) -> str | None:
    services.job_delete(job=job)
    return None
