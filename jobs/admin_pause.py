"""The admin's "Pause until…" action: the job list's action bar gets a date and time picker, and
the action pauses the selected jobs until then (``jobs.services.job_pause``, as the API's
``POST /api/jobs/{id}/pause/ {"until": …}``). Kept out of ``jobs.admin`` so that the list's other
actions stay as they are."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ActionForm
from django.contrib.admin.widgets import AdminSplitDateTime
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from core import times
from jobs import services
from jobs.models import Job

if TYPE_CHECKING:
    from jobs.preparation import Actor


class JobActionForm(ActionForm):
    """The action bar with the time a "Pause until…" brings the jobs back (in the site's zone)."""

    until = forms.SplitDateTimeField(
        label=gettext_lazy("until"),
        required=False,
        widget=AdminSplitDateTime,
        help_text=gettext_lazy("For “Pause selected jobs until…”."),
    )


@admin.action(description=gettext_lazy("Pause selected jobs until… (the date and time beside)"), permissions=["change"])
def pause_jobs_until(modeladmin: Any, request: HttpRequest, queryset: QuerySet[Job]) -> None:
    # The until field alone: the action bar's own fields were read by the admin already.
    field = JobActionForm.base_fields["until"]
    try:
        until = field.clean(field.widget.value_from_datadict(request.POST, {}, "until"))
    except ValidationError as exc:
        modeladmin.message_user(request, _("until: %(reason)s") % {"reason": " ".join(exc.messages)}, messages.ERROR)
        return
    if until is None:
        modeladmin.message_user(
            request, _("Give the date and time the jobs come back (beside the action)."), messages.ERROR
        )
        return
    try:
        services.validate_pause_until(until)
    except ValidationError as exc:
        modeladmin.message_user(request, " ".join(exc.messages), messages.ERROR)
        return

    def pause(job: Job, actor: Actor) -> str | None:
        after = services.job_pause(job=job, until=until)
        return None if (after.status, after.paused_until) != (job.status, job.paused_until) else _("already so")

    modeladmin._each(request, queryset, pause, "paused until", bulk="pause", said={"until": _shown(until)})


def _shown(at: datetime) -> str:
    return times.format_time(at)  # the admin's one format: seconds and zone


class PauseUntilForm(forms.Form):
    until = forms.SplitDateTimeField(
        label=gettext_lazy("Pause until"), widget=AdminSplitDateTime, help_text=gettext_lazy("In the site's time zone.")
    )


def pause_until_view(modeladmin: Any, request: HttpRequest, object_id: str) -> HttpResponse:
    """The job page's "Pause until…": a date and time picker, then ``job_pause`` with ``until``."""
    job = get_object_or_404(Job, pk=object_id)
    back = reverse("admin:jobs_job_change", args=[job.pk])
    if not modeladmin.has_change_permission(request, job):
        return HttpResponseRedirect(back)
    form = PauseUntilForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        until = form.cleaned_data["until"]
        try:
            services.job_pause(job=job, until=until)
        except ValidationError as exc:
            form.add_error("until", " ".join(exc.messages))
        else:
            modeladmin.message_user(
                request, _("%(id)s paused until %(until)s.") % {"id": job.pk, "until": _shown(until)}, messages.SUCCESS
            )
            return HttpResponseRedirect(back)
    context = {
        **modeladmin.admin_site.each_context(request),
        "title": _("Pause %(id)s until…") % {"id": job.pk},
        "job": job,
        "form": form,
        "media": modeladmin.media + form.media,
        "opts": Job._meta,
    }
    return TemplateResponse(request, "admin/jobs/job/pause_until.html", context)


def pause_until_link(job: Job) -> SafeString | str:
    """A link to the page above, for the job's page."""
    if job._state.adding or not job.pk or job.status == Job.Status.COMPLETED:
        return "—"
    url = reverse("admin:jobs_job_pause_until", args=[job.pk])
    return format_html('<a class="button" href="{}">{}</a>', url, _("Pause until…"))
