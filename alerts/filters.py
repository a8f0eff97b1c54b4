from __future__ import annotations

import django_filters

from alerts.models import Channel, Notification


class ChannelFilter(django_filters.FilterSet):
    class Meta:
        model = Channel
        fields = ["kind", "enabled"]


class NotificationFilter(django_filters.FilterSet):
    class Meta:
        model = Notification
        fields = ["channel", "job", "run", "status", "event"]
