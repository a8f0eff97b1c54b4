"""Calendars in the admin: a calendar with its windows inline, and an "Import holidays (.ics)" page.
Windows are checked by the one path the API takes (``calendars.services.window_prepare``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.widgets import AdminSplitDateTime
from django.core.exceptions import ValidationError
from django.db.models import Count, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext

from calendars import services
from calendars.ics import import_ics
from calendars.models import Calendar, Window
from calendars.preview import job_preview
from calendars.selectors import jobs_using
from core import times
from core.admin_utils import ZonedSplitDateTimeField
from jobs.models import Job
from jobs.triggers import get_zone


class WindowForm(forms.ModelForm):
    """A window as the API reads it: a range's start and end in the calendar's time zone (the
    boxes show and take that zone's wall time, whatever zone the reader's admin shows)."""

    zone_name: str = settings.TIME_ZONE  # the calendar's: set by WindowInline.get_formset
    start = ZonedSplitDateTimeField(label=gettext_lazy("start"), required=False, widget=AdminSplitDateTime)
    end = ZonedSplitDateTimeField(label=gettext_lazy("end"), required=False, widget=AdminSplitDateTime)

    class Meta:
        model = Window
        fields = ["kind", "name", "start", "end", "cron", "duration_seconds"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.zone = times.zone_named(self.zone_name)
        for name in ("start", "end"):
            box = self.fields[name]
            if isinstance(box, ZonedSplitDateTimeField):
                box.zone = self.zone
                box.help_text = _("In the calendar's time zone: %(zone)s") % {"zone": self.zone_name}

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        for name in ("start", "end"):  # the wall time entered, in the calendar's zone
            if isinstance(data.get(name), datetime) and timezone.is_naive(data[name]):
                data[name] = timezone.make_aware(data[name], self.zone)
        item = {k: v for k, v in data.items() if k in services.WINDOW_FIELDS and v not in (None, "")}
        try:
            services.window_prepare(item, zone=self.zone)
        except ValidationError as exc:
            raise ValidationError(exc.messages) from None
        return data


class WindowInline(admin.TabularInline):
    model = Window
    form = WindowForm
    extra = 1
    fields = ["kind", "name", "start", "end", "cron", "duration_seconds"]

    def get_formset(self, request: HttpRequest, obj: Calendar | None = None, **kwargs: Any) -> Any:
        # The zone the calendar has, or is given in this same post (its form is cleaned apart).
        given = request.POST.get("time_zone") if request.method == "POST" else None
        zone_name = given or (obj.time_zone if obj is not None else "") or settings.TIME_ZONE
        try:
            get_zone(zone_name)
        except ValidationError:
            zone_name = settings.TIME_ZONE  # the calendar's form says what is wrong with it
        kwargs["form"] = type("WindowForm", (WindowForm,), {"zone_name": zone_name})
        return super().get_formset(request, obj, **kwargs)


class IcsForm(forms.Form):
    file = forms.FileField(label=gettext_lazy("iCalendar file (.ics)"))
    replace = forms.BooleanField(required=False, label=gettext_lazy("Replace the calendar's windows"))


@admin.register(Calendar)
class CalendarAdmin(admin.ModelAdmin):
    list_display = ["name", "time_zone", "window_count", "updated_at"]
    search_fields = ["name"]
    inlines = [WindowInline]
    readonly_fields = ["used_by", "import_link", "created_at", "updated_at"]
    fields = ["name", "description", "time_zone", "used_by", "import_link", "created_at", "updated_at"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Calendar]:
        return super().get_queryset(request).annotate(windows_counted=Count("windows"))

    @admin.display(description=gettext_lazy("windows"), ordering="windows_counted")
    def window_count(self, calendar: Calendar) -> int:
        return int(getattr(calendar, "windows_counted", 0))

    @admin.display(description=gettext_lazy("used by jobs"))
    def used_by(self, calendar: Calendar) -> str:
        return ", ".join(jobs_using(calendar.pk)) if calendar.pk else ""

    @admin.display(description=gettext_lazy("holidays"))
    def import_link(self, calendar: Calendar) -> SafeString | str:
        if not calendar.pk:
            return _("Save the calendar first.")
        url = reverse("admin:calendars_calendar_import_ics", args=[calendar.pk])
        return format_html('<a class="button" href="{}">{}</a>', url, _("Import holidays (.ics)"))

    def save_related(self, request: HttpRequest, form: forms.ModelForm, formsets: Any, change: bool) -> None:
        super().save_related(request, form, formsets, change)
        form.instance.save(update_fields=["updated_at"])  # beat reloads a calendar whose updated_at moved

    def save_model(self, request: HttpRequest, obj: Calendar, form: forms.ModelForm, change: bool) -> None:
        # The calendar's own fields through the services; its windows are the inline's (checked
        # by WindowForm as the API checks them), and save_related bumps updated_at after them.
        data = {name: form.cleaned_data[name] for name in services.CALENDAR_FIELDS if name in form.cleaned_data}
        saved = services.calendar_update(calendar=obj, data=data) if change else services.calendar_create(data=data)
        obj.pk = saved.pk
        obj._state.adding = False
        obj.refresh_from_db()

    def delete_model(self, request: HttpRequest, obj: Calendar) -> None:
        services.calendar_delete(calendar=obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Calendar]) -> None:
        """ "Delete selected calendars": through the service, each; those jobs still use are kept."""
        kept = []
        for calendar in queryset:
            try:
                services.calendar_delete(calendar=calendar)
            except ValidationError as exc:
                kept.append(f"{calendar.name}: {' '.join(exc.messages)}")
        if kept:
            self.message_user(
                request, _("Not deleted: %(calendars)s") % {"calendars": " | ".join(kept[:20])}, messages.ERROR
            )

    def delete_view(self, request: HttpRequest, object_id: str, extra_context: dict[str, Any] | None = None) -> Any:
        calendar = Calendar.objects.filter(pk=object_id).first()
        if request.method == "POST" and calendar is not None and (users := jobs_using(calendar.pk)):
            message = _("Used by the jobs %(jobs)s: take it out of them first.") % {"jobs": ", ".join(users[:10])}
            self.message_user(request, message, messages.ERROR)
            return HttpResponseRedirect(reverse("admin:calendars_calendar_change", args=[calendar.pk]))
        return super().delete_view(request, object_id, extra_context)

    def get_urls(self) -> list[URLPattern]:
        view = self.admin_site.admin_view(self.import_view)
        return [path("<int:object_id>/import-ics/", view, name="calendars_calendar_import_ics"), *super().get_urls()]

    def import_view(self, request: HttpRequest, object_id: int) -> HttpResponse:
        calendar = get_object_or_404(Calendar, pk=object_id)
        if not self.has_change_permission(request, calendar):
            return HttpResponseRedirect(reverse("admin:calendars_calendar_change", args=[calendar.pk]))
        form = IcsForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            try:
                result = import_ics(
                    calendar=calendar, content=form.cleaned_data["file"].read(), replace=form.cleaned_data["replace"]
                )
            except ValidationError as exc:
                form.add_error("file", " ".join(exc.messages))
            else:
                n = len(result.skipped)
                skipped = ngettext("; %(n)d event skipped", "; %(n)d events skipped", n) % {"n": n} if n else ""
                added = ngettext("%(n)d window imported", "%(n)d windows imported", result.added) % {"n": result.added}
                self.message_user(request, f"{added}{skipped}.", messages.SUCCESS)
                return HttpResponseRedirect(reverse("admin:calendars_calendar_change", args=[calendar.pk]))
        context = {
            **self.admin_site.each_context(request),
            "title": _("Import holidays into %(name)s") % {"name": calendar.name},
            "calendar": calendar,
            "form": form,
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/calendars/calendar/import_ics.html", context)


def next_fires_html(job: Job) -> SafeString | str:
    """The job page's "Next fires": the API's preview (``calendars.preview``) as a small table."""
    if job._state.adding or not job.pk:
        return _("Shown once the job is saved.")
    fires = job_preview(job=job, after=timezone.now(), count=10)["fires"]
    if not fires:
        return _("None: the job has no fire to come.")
    rows = format_html_join(
        "",
        "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
        (
            (
                times.time_html(datetime.fromisoformat(fire["at"]), with_relative=False),
                _("skipped") if fire["skipped"] else _("moved") if fire["moved"] else "",
                "; ".join(fire["reasons"]),
            )
            for fire in fires
        ),
    )
    return format_html(
        '<table class="ct-next-fires"><tr><th>{}</th><th></th><th>{}</th></tr>{}</table>', _("at"), _("why"), rows
    )


def _calendar_choices() -> list[tuple[int, str]]:
    return [(pk, f"{name} ({zone})") for pk, name, zone in Calendar.objects.values_list("pk", "name", "time_zone")]


def calendar_choice_field(**kwargs: Any) -> forms.TypedMultipleChoiceField:
    """The job form's ``calendars``: the calendars by name, kept as the job keeps them (ids)."""
    return forms.TypedMultipleChoiceField(
        choices=_calendar_choices,
        coerce=int,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        label=gettext_lazy("calendars"),
        help_text=gettext_lazy("The job does not run in these calendars' windows (see the blackout policy)."),
    )
