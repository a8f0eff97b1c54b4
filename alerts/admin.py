"""Channels, alert rules, incidents and notifications in the Django admin. Saving and the test
action go through alerts.services and alerts.rules; incidents and notifications are read-only
(evaluation and delivery write them).

The job form gets an "Alerts" section here: ``JobAdmin`` extends the one ``runs.admin``
registers, and replaces it.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import Count, QuerySet
from django.forms.models import BaseInlineFormSet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.http import urlencode
from django.utils.safestring import SafeString
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext

from alerts import rules, services
from alerts.models import AlertRule, Channel, Incident, Notification
from alerts.secrets import shown_secret, shown_target
from core import times
from core.admin_utils import CappedCountPaginator, RefusedSaveMixin, SaveRefused
from jobs.admin_tags import TagsFormField
from jobs.models import Job
from jobs.tags import has_any_tag
from runs import admin as runs_admin


class ChannelForm(forms.ModelForm):
    class Meta:
        model = Channel
        fields = ["name", "kind", "target", "secret", "enabled"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk:  # shown masked; sent back masked, the stored value is kept
            self.initial["target"] = shown_target(self.instance.target)
            self.initial["secret"] = shown_secret(self.instance.secret)

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        stored = Channel.objects.get(pk=self.instance.pk) if self.instance.pk else None
        try:
            self.cleaned_data = services.channel_clean(cleaned, stored=stored)
        except ValidationError as exc:
            for field, errors in exc.message_dict.items():
                self.add_error(field if field in self.fields else None, errors)
        return self.cleaned_data

    def _post_clean(self) -> None:
        # The model's own checks are the service's; what it cleaned is what is saved.
        for name, value in self.cleaned_data.items():
            setattr(self.instance, name, value)


@admin.register(Channel)
class ChannelAdmin(admin.ModelAdmin):
    form = ChannelForm
    list_display = ["name", "kind", "shown_target", "enabled"]
    list_filter = ["kind", "enabled"]
    search_fields = ["name"]
    actions = ["send_test_message"]

    @admin.display(description=gettext_lazy("target"))
    def shown_target(self, channel: Channel) -> str:
        return shown_target(channel.target)

    @admin.action(description=gettext_lazy("Send a test message"), permissions=["change"])
    def send_test_message(self, request: HttpRequest, queryset: QuerySet[Channel]) -> None:
        for channel in queryset:
            notification = services.channel_test(channel=channel)
            if notification.status == Notification.Status.SENT:
                self.message_user(
                    request, _("%(channel)s: the test message was sent.") % {"channel": channel.name}, messages.SUCCESS
                )
            else:
                self.message_user(request, f"{channel.name}: {notification.error}", messages.ERROR)


class AlertRuleForm(forms.ModelForm):
    tags = TagsFormField(
        help_text=gettext_lazy("It also watches every job with one of these tags (as a job's tags are written).")
    )

    class Meta:
        model = AlertRule
        fields = ["name", "event", "threshold", "jobs", "tags", "channels", "remind_every_seconds", "enabled"]
        widgets = {"channels": forms.CheckboxSelectMultiple}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if "channels" in self.fields:  # not for a user who may only view the rule
            self.fields["channels"].required = False  # the service says a rule needs one, in the API's words

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        stored = AlertRule.objects.get(pk=self.instance.pk) if self.instance.pk else None
        try:
            self.cleaned_data = rules.rule_clean(cleaned, stored=stored)
        except ValidationError as exc:
            for field, errors in exc.message_dict.items():
                if field not in self.errors:  # a field the form refused already says why
                    self.add_error(field if field in self.fields else None, errors)
        return self.cleaned_data

    def _post_clean(self) -> None:
        # The model's own checks are the service's; the service saves (AlertRuleAdmin.save_model).
        for name in ("name", "event", "threshold", "tags", "remind_every_seconds", "enabled"):
            if name in self.cleaned_data:
                setattr(self.instance, name, self.cleaned_data[name])


@admin.register(AlertRule)
class AlertRuleAdmin(RefusedSaveMixin, admin.ModelAdmin):
    form = AlertRuleForm
    list_display = ["name", "event", "threshold", "watches", "enabled"]
    list_filter = ["event", "enabled", "channels"]
    search_fields = ["name"]
    autocomplete_fields = ["jobs"]  # searched as typed: there may be a hundred thousand jobs

    def get_queryset(self, request: HttpRequest) -> QuerySet[AlertRule]:
        return super().get_queryset(request).annotate(job_count=Count("jobs"))

    @admin.display(description=gettext_lazy("jobs"))
    def watches(self, rule: AlertRule) -> str:
        count = getattr(rule, "job_count", 0)
        if count == 0 and not rule.tags:
            return _("every job")
        named = [ngettext("%(n)d job", "%(n)d jobs", count) % {"n": count}] if count else []
        tagged = [_("tagged %(tags)s") % {"tags": ", ".join(rule.tags)}] if rule.tags else []
        return "; ".join(named + tagged)

    def save_model(self, request: HttpRequest, obj: AlertRule, form: forms.ModelForm, change: bool) -> None:
        # The service checks again as it saves: what changed since the form's check (a job deleted
        # meanwhile) is refused there, and told by changeform_view.
        data = form.cleaned_data
        try:
            saved = rules.rule_update(rule=obj, data=data) if change else rules.rule_create(data=data)
        except ValidationError as exc:
            raise SaveRefused(" ".join(exc.messages)) from exc
        obj.pk = saved.pk
        obj.refresh_from_db()

    def save_related(self, request: HttpRequest, form: forms.ModelForm, formsets: Any, change: bool) -> None:
        # The service saved the jobs and channels with the rule; the form's save_m2m is not called.
        for formset in formsets:
            self.save_formset(request, form, formset, change=change)

    def delete_model(self, request: HttpRequest, obj: AlertRule) -> None:
        rules.rule_delete(rule=obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[AlertRule]) -> None:
        for rule in queryset:
            rules.rule_delete(rule=rule)


class IncidentStateFilter(admin.SimpleListFilter):
    title = gettext_lazy("state")
    parameter_name = "open"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin[Any]) -> list[tuple[str, str]]:
        return [("1", _("open")), ("0", _("closed"))]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Incident]) -> QuerySet[Incident]:
        if self.value() in ("0", "1"):
            return queryset.filter(closed_at__isnull=self.value() == "1")
        return queryset


@admin.register(Incident)
class IncidentAdmin(admin.ModelAdmin):
    list_display = ["id", "rule", "job", "event", "occurrences", "opened_at", "last_notified_at", "closed_at"]
    list_filter = [IncidentStateFilter, runs_admin.JobIdFilter, "event", "rule"]
    list_select_related = ["rule"]
    show_full_result_count = False
    paginator = CappedCountPaginator

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Incident | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Incident | None = None) -> bool:
        return False


@admin.register(Notification)
class NotificationAdmin(admin.ModelAdmin):
    list_display = ["id", "event", "channel", "rule", "job", "status", "attempts", "sent_at", "created_at"]
    list_filter = ["status", "event", "channel", "rule"]
    list_select_related = ["channel", "rule", "job"]
    raw_id_fields = ["job", "run", "incident"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Notification | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Notification | None = None) -> bool:
        return False


class RuleLinkFormSet(BaseInlineFormSet):
    """The rules naming one job, changed from the job's side: checked by ``rules.job_rules_clean``,
    which knows when a change would turn a rule into one for every job, or for this job alone."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.is_bound and f"{self.prefix}-TOTAL_FORMS" not in self.data:
            # A job form posted without this section (a client of the page from before it had one):
            # the job's rules stay as they are, rather than the whole save failing.
            self.data = {**self.data, f"{self.prefix}-TOTAL_FORMS": "0", f"{self.prefix}-INITIAL_FORMS": "0"}

    def clean(self) -> None:
        super().clean()
        attach, self.detached = [], []
        for form in self.forms:
            if not hasattr(form, "cleaned_data"):
                continue
            before = form.initial.get("alertrule") if form.instance.pk else None
            after = None if form.cleaned_data.get("DELETE") else form.cleaned_data.get("alertrule")
            after_id = after.pk if after is not None else None
            if before != after_id:
                self.detached += [before] if before else []
                attach += [after_id] if after_id else []
        rules.job_rules_clean(job_id=self.instance.pk, attach=attach, detach=self.detached)


class RuleLinkInline(admin.TabularInline):
    model = AlertRule.jobs.through
    formset = RuleLinkFormSet
    fields = ["alertrule"]
    extra = 0
    verbose_name = gettext_lazy("alert rule naming this job")
    verbose_name_plural = gettext_lazy("alert rules naming this job")

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        field = super().formfield_for_foreignkey(db_field, request, **kwargs)
        if field is not None and db_field.name == "alertrule":
            field.label = _("Rule")  # not the through model's "alertrule"
        return field


admin.site.unregister(Job)
ALERTS_TITLE = gettext_lazy("Alerts")


@admin.register(Job)
class JobAdmin(runs_admin.JobAdmin):
    """The job form with its "Alerts" section: the rules that name the job (an inline, saved by the
    admin, then ``rules.job_rules_saved``), the enabled rules for every job and its open incidents."""

    inlines = [RuleLinkInline]
    readonly_fields = [*runs_admin.JobAdmin.readonly_fields, "alerts"]
    fieldsets = [*runs_admin.JobAdmin.fieldsets, (ALERTS_TITLE, {"fields": ["alerts"]})]

    def get_fieldsets(self, request: HttpRequest, obj: Job | None = None) -> list:
        fieldsets = super().get_fieldsets(request, obj)
        if obj is None or not request.user.has_perm("alerts.view_alertrule"):
            fieldsets = [f for f in fieldsets if f[0] != ALERTS_TITLE]
        return fieldsets

    def save_formset(self, request: HttpRequest, form: forms.ModelForm, formset: Any, change: bool) -> None:
        super().save_formset(request, form, formset, change)
        if isinstance(formset, RuleLinkFormSet):
            rules.job_rules_saved(job_id=form.instance.pk, detached=formset.detached)

    @admin.display(description=gettext_lazy("also watched by"))
    def alerts(self, job: Job) -> SafeString:
        every = AlertRule.objects.filter(enabled=True, jobs__isnull=True, tags=[]).order_by("name")
        by_tag = AlertRule.objects.filter(has_any_tag(job.tags or []), enabled=True).order_by("name")
        incidents = Incident.objects.filter(job=job, closed_at__isnull=True).select_related("rule").order_by("-id")
        every_html = format_html_join(
            ", ",
            '<a href="{}">{}</a> ({})',
            ((reverse("admin:alerts_alertrule_change", args=[r.pk]), r.name, r.event) for r in every),
        )
        tag_html = format_html_join(
            ", ",
            '<a href="{}">{}</a> ({})',
            ((reverse("admin:alerts_alertrule_change", args=[r.pk]), r.name, r.event) for r in by_tag),
        )
        open_html = format_html_join(
            "",
            '<li><a href="{}">{}</a>, {} {}</li>',
            (
                (reverse("admin:alerts_incident_change", args=[i.pk]), i.event,
                 ngettext("rule %(rule)s: %(n)d occurrence since", "rule %(rule)s: %(n)d occurrences since",
                          i.occurrences) % {"rule": i.rule.name, "n": i.occurrences},
                 times.time_html(i.opened_at))
                for i in incidents
            ),
        )  # fmt: skip
        all_incidents = reverse("admin:alerts_incident_changelist") + "?" + urlencode({"job": job.pk})
        return format_html(
            '<div class="ct-job-alerts"><p>{} {}</p><p>{} {}</p><p>{}</p><ul>{}</ul><p><a href="{}">{}</a></p></div>',
            _("Enabled rules for every job:"),
            every_html or _("none"),
            _("Enabled rules for its tags:"),
            tag_html or _("none"),
            _("Open incidents:"),
            open_html or format_html("<li>{}</li>", _("none")),
            all_incidents,
            _("All incidents of this job"),
        )
