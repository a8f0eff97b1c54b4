"""The alerts API's filters."""

from __future__ import annotations

import django_filters

from alerts.models import AlertRule, Channel, Incident, Notification
from jobs.models import Job


class ChannelFilter(django_filters.FilterSet):
    class Meta:
        model = Channel
        fields = ["kind", "enabled"]


class AlertRuleFilter(django_filters.FilterSet):
    # ``job``: the rules that name the job. The rules with no jobs, which watch every job, are not
    # among them: a filter on one job's rules would otherwise answer with every such rule too.
    channel = django_filters.ModelChoiceFilter(field_name="channels", queryset=Channel.objects.all())
    job = django_filters.ModelChoiceFilter(field_name="jobs", queryset=Job.objects.all())

    class Meta:
        model = AlertRule
        fields = ["event", "enabled", "channel", "job"]


class IncidentFilter(django_filters.FilterSet):
    open = django_filters.BooleanFilter(field_name="closed_at", lookup_expr="isnull", label="open")

    class Meta:
        model = Incident
        fields = ["rule", "job", "event", "open"]


class NotificationFilter(django_filters.FilterSet):
    class Meta:
        model = Notification
        fields = ["rule", "channel", "job", "run", "status", "event"]
