"""Workflows on a run's admin page: the upstream run that fired it, and the runs it fired.

A mixin of ``runs.admin.RunAdmin``, kept apart so that the run admin stays about runs."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.contrib import admin
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from core.status_words import STATUS_WORDS
from runs.models import Run

if TYPE_CHECKING:
    _Base = admin.ModelAdmin[Run]
else:
    _Base = object

FIELDSET = gettext_lazy("Workflow")
# A run's page lists at most this many of the runs it fired (one per downstream job).
MAX_SHOWN = 50


class RunWorkflowAdminMixin(_Base):
    """Adds the "Workflow" fieldset to the page of a run fired by an upstream run, or that fired some."""

    def get_fieldsets(self, request: HttpRequest, obj: Run | None = None) -> list[Any]:
        fieldsets = list(super().get_fieldsets(request, obj))
        if obj is not None and (obj.upstream_run_id or obj.trigger == Run.Trigger.DEPENDENCY or _fired(obj).exists()):
            fieldsets.insert(1, (FIELDSET, {"fields": ["upstream_run_link", "downstream_runs_links"]}))
        return fieldsets

    def get_readonly_fields(self, request: HttpRequest, obj: Run | None = None) -> list[str]:
        return [*super().get_readonly_fields(request, obj), "upstream_run_link", "downstream_runs_links"]

    @admin.display(description=gettext_lazy("fired by"))
    def upstream_run_link(self, run: Run) -> SafeString | str:
        if not run.upstream_run_id:
            return "—" if run.trigger != Run.Trigger.DEPENDENCY else _("a run since deleted")
        upstream = Run.objects.filter(pk=run.upstream_run_id).values_list("job_id", "status").first()
        job_id, status = upstream or ("?", "?")
        return format_html(
            '<a href="{}">{}</a> {}',
            reverse("admin:runs_run_change", args=[run.upstream_run_id]), _("run %(id)s") % {"id": run.upstream_run_id},
            _("of %(job)s (%(status)s)") % {"job": job_id, "status": STATUS_WORDS.get(status, status)},
        )  # fmt: skip

    @admin.display(description=gettext_lazy("fired"))
    def downstream_runs_links(self, run: Run) -> SafeString | str:
        fired = list(_fired(run).values_list("pk", "job_id", "status")[:MAX_SHOWN])
        if not fired:
            return "—"
        return format_html_join(
            ", ",
            '<a href="{}">{}</a> {}',
            (
                (
                    reverse("admin:runs_run_change", args=[pk]),
                    _("run %(id)s") % {"id": pk},
                    _("of %(job)s (%(status)s)") % {"job": job_id, "status": STATUS_WORDS.get(status, status)},
                )
                for pk, job_id, status in fired
            ),
        )


def _fired(run: Run) -> Any:
    return Run.objects.filter(upstream_run_id=run.pk, trigger=Run.Trigger.DEPENDENCY).order_by("pk")
