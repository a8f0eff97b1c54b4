"""Runs in the admin: a read-only record, cheap to list on a large table.

And the job admin as users see it: ``jobs.admin.JobAdmin`` with what shows or makes runs (the
last run's link, the recent runs, the last run status filter, run now), registered here.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, TypedDict

from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Count, OuterRef, QuerySet, Subquery
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.loader import render_to_string
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.http import urlencode
from django.utils.safestring import SafeString
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext

from calendars.admin import calendar_choice_field, next_fires_html
from core import times
from core.admin_utils import BoundedSearchMixin, CappedCountPaginator, badge
from core.exceptions import Conflict
from jobs import admin as jobs_admin
from jobs.admin_pause import pause_jobs_until, pause_until_link, pause_until_view
from jobs.admin_tags import TagListFilter
from jobs.models import Job
from jobs.secrets import mask_overrides
from runs import cancellation, charts, enqueue, health
from runs.admin_live import LIVE_LOG_JS, text_block
from runs.admin_workflow import RunWorkflowAdminMixin
from runs.models import Run

if TYPE_CHECKING:
    from django_stubs_ext import WithAnnotations

    from jobs.preparation import Actor


class _LastRun(TypedDict):
    last_run_id: int | None  # JobAdmin.get_queryset's annotations
    health: str


RECENT_RUNS = 20
MAX_LINKED = 20  # run now's message links at most this many of the runs it queued

# The columns the list shows. The captured text (output, response body, log, traceback: up to
# CRONTASK_MAX_OUTPUT_BYTES each) is only read on a run's own page.
LIST_COLUMNS = (
    "id", "job_id", "trigger", "attempt", "status", "queued_at", "started_at", "duration_ms",
    "status_code", "exit_code",
)  # fmt: skip
# The sections of a run's page that only one kind of job fills.
KIND_SECTIONS: dict[str, str | None] = {"HTTP": Job.Kind.HTTP, "Python": Job.Kind.PYTHON, "Shell": Job.Kind.SHELL}

# The run page's sections shown only when they apply (RunAdmin.get_fieldsets).
CANCELLED_TITLE = gettext_lazy("Cancelled")
FAILURE_TITLE = gettext_lazy("Failure")

TEXT_BLOCK = (
    '<pre style="white-space:pre-wrap;max-height:30em;overflow:auto;background:var(--darkened-bg,#f8f8f8);'
    'padding:8px;margin:0;font-family:var(--font-family-monospace,monospace)">{}</pre>'
)


def trigger_label(trigger: str) -> str:
    """What fired a run, in the request's language ("schedule", "manual", …)."""
    return str(Run.Trigger(trigger).label) if trigger in Run.Trigger.values else trigger


class JobIdFilter(admin.SimpleListFilter):
    """``?job=<id>``: one job's runs (the link under a job's recent runs). No option list: there may be
    a hundred thousand jobs."""

    title = gettext_lazy("job")
    parameter_name = "job"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin[Any]) -> list[tuple[str, str]]:
        value = self.value()
        return [(value, value)] if value else []

    def queryset(self, request: HttpRequest, queryset: QuerySet[Run]) -> QuerySet[Run]:
        return queryset.filter(job_id=self.value()) if self.value() else queryset


class RunChangeList(ChangeList):
    def get_queryset(self, request: HttpRequest, exclude_parameters: list[str | None] | None = None) -> QuerySet[Run]:
        return super().get_queryset(request, exclude_parameters).only(*LIST_COLUMNS)


@admin.register(Run)
class RunAdmin(RunWorkflowAdminMixin, BoundedSearchMixin, admin.ModelAdmin):
    # Fits 1280 px: the scheduled time, worker and captured text are on the run's page.
    list_display = ["id", "job_link", "outcome", "trigger_shown", "started", "duration"]
    # "started_at" is the admin's date filter (today, past 7 days, this month, this year): fixed
    # ranges over the run_started_id_idx index. No date_hierarchy: it reads the distinct days of the
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
        (
            gettext_lazy("Timing"),
            {"fields": ["scheduled_for_shown", "queued_at_shown", "started_at_shown", "finished_at_shown", "duration"]},
        ),
        (CANCELLED_TITLE, {"fields": ["cancelled_at", "cancelled_by"]}),
        ("HTTP", {"fields": ["status_code", "response_body_block"]}),
        ("Python", {"fields": ["result_block", "log_output_block"]}),
        ("Shell", {"fields": ["exit_code", "output_block"]}),
        (FAILURE_TITLE, {"fields": ["traceback_block"]}),
        (gettext_lazy("Delivery"), {"fields": ["overrides_masked", "sent_at", "worker", "celery_task_id"]}),
    ]
    readonly_fields = [
        "job_link", "status_badge", "trigger", "attempt", "retry_of_link", "target", "error", "scheduled_for_shown",
        "queued_at_shown", "started_at_shown", "finished_at_shown", "duration", "status_code", "response_body_block",
        "result_block",
        "log_output_block", "exit_code", "output_block", "traceback_block", "overrides_masked", "sent_at", "worker",
        "celery_task_id", "cancelled_at", "cancelled_by",
    ]  # fmt: skip

    class Media:
        js = [LIVE_LOG_JS]  # follows a going run's log on its page; does nothing elsewhere

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return RunChangeList

    actions = ["cancel_runs"]

    def get_fieldsets(self, request: HttpRequest, obj: Run | None = None) -> list:
        fieldsets = super().get_fieldsets(request, obj)
        if obj is None or obj.cancelled_at is None:
            fieldsets = [f for f in fieldsets if f[0] != CANCELLED_TITLE]
        if obj is not None:  # only the section of the run's kind (HTTP, Python or Shell)
            kind = Job.objects.filter(pk=obj.job_id).values_list("kind", flat=True).first()
            fieldsets = [f for f in fieldsets if KIND_SECTIONS.get(str(f[0]), kind) == kind]
        if obj is not None and not obj.traceback:
            fieldsets = [f for f in fieldsets if f[0] != FAILURE_TITLE]
        return list(fieldsets)

    @admin.display(description=gettext_lazy("status"), ordering="status")
    def outcome(self, run: Run) -> SafeString:
        code = run.status_code if run.status_code is not None else run.exit_code
        if code is None:
            return badge(run.status)
        return format_html('{} <span class="ct-code" title="{}">{}</span>', badge(run.status), _("status code"), code)

    @admin.display(description=gettext_lazy("trigger"), ordering="trigger")
    def trigger_shown(self, run: Run) -> str:
        label = trigger_label(run.trigger)
        return label if run.attempt <= 1 else _("%(trigger)s, attempt %(n)d") % {"trigger": label, "n": run.attempt}

    @admin.display(description=gettext_lazy("started"), ordering="started_at")
    def started(self, run: Run) -> SafeString:
        return times.time_html(run.started_at or run.queued_at)

    @admin.display(description=gettext_lazy("scheduled for"))
    def scheduled_for_shown(self, run: Run) -> SafeString:
        return times.time_html(run.scheduled_for)

    @admin.display(description=gettext_lazy("queued at"))
    def queued_at_shown(self, run: Run) -> SafeString:
        return times.time_html(run.queued_at)

    @admin.display(description=gettext_lazy("started at"))
    def started_at_shown(self, run: Run) -> SafeString:
        return times.time_html(run.started_at)

    @admin.display(description=gettext_lazy("finished at"))
    def finished_at_shown(self, run: Run) -> SafeString:
        return times.time_html(run.finished_at)

    def has_cancel_permission(self, request: HttpRequest, obj: Run | None = None) -> bool:
        return request.user.has_perm("runs.cancel_run")

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        run = Run.objects.filter(pk=object_id).only("status").first() if object_id.isdigit() else None
        going = run is not None and run.status in (Run.Status.QUEUED, Run.Status.RUNNING)
        context = {**(extra_context or {}), "can_cancel": going and self.has_cancel_permission(request)}
        return super().change_view(request, object_id, form_url, context)

    def get_urls(self) -> list[URLPattern]:
        button = self.admin_site.admin_view
        return [
            path("<int:object_id>/cancel/", button(self.cancel_view), name="runs_run_cancel"),
            path("<path:object_id>/run-again/", button(self.run_again_view), name="runs_run_run_again"),
            *super().get_urls(),
        ]

    def cancel_view(self, request: HttpRequest, object_id: int) -> HttpResponse:
        """The Cancel button of a queued or running run's page (POST)."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        run = get_object_or_404(Run, pk=object_id)
        if self.has_cancel_permission(request):
            self.cancel_runs(request, Run.objects.filter(pk=run.pk))
        return HttpResponseRedirect(reverse("admin:runs_run_change", args=[run.pk]))

    @admin.action(description=gettext_lazy("Cancel selected runs"), permissions=["cancel"])
    def cancel_runs(self, request: HttpRequest, queryset: QuerySet[Run]) -> None:
        cancelled, asked, ended = 0, 0, []
        for run in queryset.only("pk", "status"):
            try:
                run = cancellation.run_cancel(run=run, actor=request.user)
            except Conflict as exc:
                ended.append(f"{run.pk}: {exc.message}")
                continue
            if run.status == Run.Status.CANCELLED:
                cancelled += 1
            else:
                asked += 1
        if cancelled or asked:
            grace = settings.CRONTASK_CANCEL_GRACE_SECONDS
            self.message_user(
                request,
                _("%(cancelled)d queued run(s) cancelled; %(asked)d running run(s) asked to stop (within %(grace)d s).")
                % {"cancelled": cancelled, "asked": asked, "grace": grace},
                messages.SUCCESS,
            )
        if ended:
            listed = " | ".join(ended[: jobs_admin.MAX_LISTED])
            self.message_user(request, _("Not cancelled: %(runs)s") % {"runs": listed}, messages.WARNING)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Run | None = None) -> bool:
        return False

    @admin.display(description=gettext_lazy("job"), ordering="job_id")
    def job_link(self, run: Run) -> SafeString:
        return format_html('<a href="{}">{}</a>', reverse("admin:jobs_job_change", args=[run.job_id]), run.job_id)

    @admin.display(description=gettext_lazy("retry of"))
    def retry_of_link(self, run: Run) -> SafeString | str:
        if not run.retry_of_id:
            return "—"
        return format_html(
            '<a href="{}">{} {}</a>',
            reverse("admin:runs_run_change", args=[run.retry_of_id]),
            _("run"),
            run.retry_of_id,
        )

    @admin.display(description=gettext_lazy("status"), ordering="status")
    def status_badge(self, run: Run) -> SafeString:
        return badge(run.status)

    @admin.display(description=gettext_lazy("duration"), ordering="duration_ms")
    def duration(self, run: Run) -> str:
        return f"{run.duration_ms} ms" if run.duration_ms is not None else "—"

    @admin.display(description=gettext_lazy("response body"))
    def response_body_block(self, run: Run) -> SafeString:
        return format_html(TEXT_BLOCK, run.response_body or "—")

    @admin.display(description=gettext_lazy("result"))
    def result_block(self, run: Run) -> SafeString:
        return format_html(TEXT_BLOCK, json.dumps(run.result, indent=2) if run.result is not None else "—")

    @admin.display(description=gettext_lazy("log output"))
    def log_output_block(self, run: Run) -> SafeString:
        return text_block(run, "log_output")  # live while the run goes on (runs.admin_live)

    @admin.display(description=gettext_lazy("output"))
    def output_block(self, run: Run) -> SafeString:
        return text_block(run, "output")

    @admin.display(description=gettext_lazy("traceback"))
    def traceback_block(self, run: Run) -> SafeString:
        return format_html(TEXT_BLOCK, run.traceback or "—")

    @admin.display(description=gettext_lazy("overrides"))
    def overrides_masked(self, run: Run) -> SafeString:
        return format_html(TEXT_BLOCK, json.dumps(mask_overrides(run.overrides), indent=2))

    # Run again: the run page's button (templates/admin/runs/run/change_form.html), a run now of
    # the run's job with the run's one-off values, for those who may run the job.
    def run_again_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        run = self.get_object(request, unquote(object_id))
        if run is None:
            raise Http404
        here = reverse("admin:runs_run_change", args=[run.pk])
        if not request.user.has_perm("jobs.change_job"):  # run now's permission (the job page's button)
            self.message_user(request, _("Running a job again needs the permission to change it."), messages.ERROR)
            return HttpResponseRedirect(here)
        try:
            new = enqueue.run_again(run=run, actor=request.user)
        except (ValidationError, PermissionDenied) as exc:
            reason = " ".join(exc.messages) if isinstance(exc, ValidationError) else str(exc)
            self.message_user(request, _("Not run again: %(reason)s") % {"reason": reason}, messages.ERROR)
            return HttpResponseRedirect(here)
        self.message_user(
            request,
            _("Run %(new)d queued: run %(old)d again, with its one-off values.") % {"new": new.pk, "old": run.pk},
        )
        return HttpResponseRedirect(reverse("admin:runs_run_change", args=[new.pk]))


class LastRunStatusFilter(admin.SimpleListFilter):
    """The run statuses as options. The field has no choices, so the stock filter would read the
    distinct values of the whole job table on every page of the list."""

    title = gettext_lazy("last run status")
    parameter_name = "last_run_status"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin[Any]) -> list[tuple[str, str]]:
        return [(value, str(label)) for value, label in Run.Status.choices]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Job]) -> QuerySet[Job]:
        return queryset.filter(last_run_status=self.value()) if self.value() else queryset


def _with_health(fieldset: Any) -> Any:
    """The job page's State section starts with the job's health."""
    name, options = fieldset
    return (
        (name, {**options, "fields": ["health_badge", *options["fields"]]})
        if name == jobs_admin.STATE_TITLE
        else fieldset
    )


class HealthFilter(admin.SimpleListFilter):
    """The jobs' health (runs.health): failing, late, healthy, never run, paused."""

    title = gettext_lazy("health")
    parameter_name = "health"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin[Any]) -> list[tuple[str, str]]:
        return [(state, str(health.LABELS[state])) for state in health.STATES]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        # JobAdmin.get_queryset annotates each job with its health (runs.health.with_health).
        return queryset.filter(health=self.value()) if self.value() in health.STATES else queryset


@admin.register(Job)
class JobAdmin(jobs_admin.JobAdmin):
    # Fits 1280 px: the name with the id under it, the health (not the status: an active job whose
    # every run fails is not "fine"), the next and last runs, the counts in one column.
    list_display = ["job_shown", "kind", "schedule", "health_badge", "next_run", "last_run", "counts"]
    list_display_links = ["job_shown"]
    list_filter = [
        HealthFilter, "status", "kind", "trigger", LastRunStatusFilter, "is_system", TagListFilter,
        jobs_admin.ChangedRecentlyFilter,
    ]  # fmt: skip
    readonly_fields = [
        *jobs_admin.JobAdmin.readonly_fields, "health_badge", "next_fires", "pause_until", "run_pictures",
        "recent_runs",
    ]  # fmt: skip
    fieldsets = [
        *[_with_health(fieldset) for fieldset in jobs_admin.JobAdmin.fieldsets],
        (gettext_lazy("Next fires"), {"fields": ["next_fires", "pause_until"]}),
        (gettext_lazy("Recent runs"), {"fields": ["run_pictures", "recent_runs"]}),
    ]
    actions = ["pause_jobs", pause_jobs_until, "resume_jobs", "run_jobs_now", "delete_jobs"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        latest = Run.objects.filter(job=OuterRef("pk")).order_by("-id").values("id")[:1]
        return health.with_health(super().get_queryset(request).annotate(last_run_id=Subquery(latest)))

    def get_fieldsets(self, request: HttpRequest, obj: Job | None = None) -> list:
        fieldsets = super().get_fieldsets(request, obj)
        if obj is None or not request.user.has_perm("runs.view_run"):  # the runs' errors are theirs to see
            fieldsets = [f for f in fieldsets if "recent_runs" not in f[1]["fields"]]
        return fieldsets

    @admin.display(description=gettext_lazy("job"), ordering="id")
    def job_shown(self, job: Job) -> SafeString:
        if job.name and job.name != job.pk:
            return format_html('{}<div class="ct-sub">{}</div>', job.name, job.pk)
        return format_html("{}", job.pk)

    @admin.display(description=gettext_lazy("health"))
    def health_badge(self, job: WithAnnotations[Job, _LastRun] | Job) -> SafeString:
        state = getattr(job, "health", None) or health.job_health(job)
        shown = badge(health.COLOURS_KEY[state], str(health.LABELS[state]))
        if job.status == Job.Status.PAUSED and job.paused_until is not None:  # comes back by itself
            until = times.time_html(job.paused_until, with_relative=False)
            return format_html('{}<div class="ct-sub">{} {}</div>', shown, _("until"), until)
        return shown

    @admin.display(description=gettext_lazy("next run"), ordering="next_run_at")
    def next_run(self, job: Job) -> SafeString:
        return times.time_html(job.next_run_at)

    @admin.display(description=gettext_lazy("last run"), ordering="last_run_at")
    def last_run(self, job: WithAnnotations[Job, _LastRun]) -> SafeString | str:
        if not job.last_run_at:
            return times.EMPTY
        url = reverse("admin:runs_run_change", args=[job.last_run_id]) if job.last_run_id else "#"
        return format_html('<a href="{}">{}</a> {}', url, badge(job.last_run_status), times.time_html(job.last_run_at))

    @admin.display(description=gettext_lazy("runs"), ordering="run_count")
    def counts(self, job: Job) -> SafeString:
        return format_html(
            '{}<div class="ct-sub">{}{}</div>',
            job.run_count,
            _("%(n)d ok") % {"n": job.success_count},
            format_html(', <span style="color:#c62828">{}</span>', _("%(n)d failed") % {"n": job.failure_count})
            if job.failure_count
            else "",
        )

    def stored_runs(self, jobs: list[Job]) -> dict[str, int]:
        rows = Run.objects.filter(job__in=[job.pk for job in jobs]).values("job_id").annotate(n=Count("id"))
        return {row["job_id"]: row["n"] for row in rows}

    @admin.display(description=gettext_lazy("pictures"))
    def run_pictures(self, job: Job) -> SafeString:
        runs = list(
            Run.objects.filter(job=job)
            .order_by("-id")
            .only("id", "status", "queued_at", "started_at", "duration_ms")[: charts.STRIP_RUNS]
        )
        return render_to_string(
            "admin/runs/job_pictures.html", {"strip": charts.run_strip(runs), "chart": charts.duration_chart(runs)}
        )

    def formfield_for_dbfield(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name == "calendars":  # ids in the job; checkboxes by name here
            return calendar_choice_field()
        return super().formfield_for_dbfield(db_field, request, **kwargs)

    @admin.display(description=gettext_lazy("pause"))
    def pause_until(self, job: Job) -> SafeString | str:
        return pause_until_link(job)

    @admin.display(description=gettext_lazy("next fires (after jitter, DST policy and calendars)"))
    def next_fires(self, job: Job) -> SafeString | str:
        return next_fires_html(job)

    @admin.display(description=gettext_lazy("last 20 runs"))
    def recent_runs(self, job: Job) -> SafeString:
        runs = list(
            Run.objects.filter(job=job)
            .order_by("-id")
            .only(
                "id", "trigger", "attempt", "status", "queued_at", "started_at", "duration_ms", "status_code",
                "exit_code", "error",
            )[:RECENT_RUNS]
        )  # fmt: skip
        rows = format_html_join(
            "",
            '<tr><td><a href="{}">{}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>',
            (
                (
                    reverse("admin:runs_run_change", args=[r.pk]), r.pk, trigger_label(r.trigger), badge(r.status),
                    times.time_html(r.started_at or r.queued_at),
                    f"{r.duration_ms} ms" if r.duration_ms is not None else times.EMPTY,
                    r.error[:120],
                )
                for r in runs
            ),
        )  # fmt: skip
        all_runs = reverse("admin:runs_run_changelist") + "?" + urlencode({"job": job.pk})
        return format_html(
            '<table class="ct-recent-runs"><thead><tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th>'
            "<th>{}</th><th>{}</th></tr></thead><tbody>{}</tbody></table>"
            '<p><a href="{}">{}</a></p>',
            _("run"), _("trigger"), _("status"), _("started"), _("duration"), _("error"),
            rows or format_html('<tr><td colspan="6">{}</td></tr>', _("No runs yet.")),
            all_runs,
            _("All runs of this job"),
        )  # fmt: skip

    @admin.action(description=gettext_lazy("Run selected jobs now"), permissions=["change"])
    def run_jobs_now(self, request: HttpRequest, queryset: QuerySet[Job]) -> None:
        self._run_now(request, queryset, bulk="run")

    def get_urls(self) -> list[URLPattern]:
        button = self.admin_site.admin_view
        return [
            path("<path:object_id>/run-now/", button(self.run_now_view), name="jobs_job_run_now"),
            path("<path:object_id>/pause-until/", button(self.pause_until_view), name="jobs_job_pause_until"),
            *super().get_urls(),
        ]

    def pause_until_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        return pause_until_view(self, request, unquote(object_id))

    def run_now_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        job = get_object_or_404(Job, pk=object_id)
        if self.has_change_permission(request, job):
            self._run_now(request, Job.objects.filter(pk=job.pk))
        else:
            jobs_admin.audit_denied(request, PermissionDenied("jobs.change_job"))
        return HttpResponseRedirect(reverse("admin:jobs_job_change", args=[job.pk]))

    def _run_now(self, request: HttpRequest, queryset: QuerySet[Job], *, bulk: str = "") -> None:
        """Run now through the service; the message links to each run it queued (the first 20)."""
        made: list[Run] = []

        def run_now(job: Job, actor: Actor) -> str | None:
            made.append(enqueue.job_run_now(job=job, actor=actor))
            return None

        self._each(request, queryset, run_now, "queued to run", bulk=bulk)
        if made:
            links = format_html_join(
                ", ",
                '<a href="{}" class="ct-run-link">{} {}</a>',
                (
                    (reverse("admin:runs_run_change", args=[r.pk]), _("run"), r.pk)
                    for r in made[: jobs_admin.MAX_LISTED]
                ),
            )
            more = len(made) - MAX_LINKED
            tail = ngettext(" and %(n)d more", " and %(n)d more", more) % {"n": more} if more > 0 else ""
            self.message_user(request, format_html("{} {}{}", _("See:"), links, tail), messages.INFO)
