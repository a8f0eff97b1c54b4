"""The shapes of the channels, alert rules, incidents and notifications API. Output masks secrets;
input is checked by ``alerts.services.channel_clean`` and ``alerts.rules.rule_clean`` (one path
with the admin), so these only check types."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from alerts.models import AlertRule, Channel, Incident, Notification
from alerts.secrets import shown_secret, shown_target


class ChannelSerializer(serializers.ModelSerializer):
    class Meta:
        model = Channel
        fields = ["id", "name", "kind", "target", "secret", "enabled", "created_at", "updated_at"]
        read_only_fields = fields

    def to_representation(self, instance: Channel) -> dict[str, Any]:
        data = super().to_representation(instance)
        data["target"], data["secret"] = shown_target(instance.target), shown_secret(instance.secret)
        return data


class ChannelWriteSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    kind = serializers.ChoiceField(choices=Channel.Kind.choices)
    target = serializers.CharField(max_length=10000)
    secret = serializers.CharField(max_length=500, required=False, allow_blank=True, trim_whitespace=False)
    enabled = serializers.BooleanField(required=False)


class ChannelTestResultSerializer(serializers.Serializer):
    ok = serializers.BooleanField()
    error = serializers.CharField(allow_null=True)
    notification = serializers.IntegerField()


class AlertRuleSerializer(serializers.ModelSerializer):
    """``jobs`` and ``channels`` as lists of ids; ``tags``: it also watches the jobs with any of
    them (``jobs`` and ``tags`` both empty: the rule watches every job)."""

    class Meta:
        model = AlertRule
        fields = [
            *("id", "name", "event", "threshold", "jobs", "tags", "channels"),
            *("remind_every_seconds", "enabled", "created_at", "updated_at"),
        ]
        read_only_fields = fields


class AlertRuleWriteSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200, allow_blank=True)  # rule_clean says so, with the rest
    event = serializers.ChoiceField(choices=AlertRule.Event.choices)
    threshold = serializers.IntegerField(required=False, allow_null=True)
    jobs = serializers.ListField(child=serializers.CharField(max_length=1000), required=False)
    # Strings only here: the rules of a tag are jobs.tags', applied by alerts.rules.rule_clean.
    tags = serializers.ListField(child=serializers.CharField(allow_blank=True, trim_whitespace=False), required=False)
    channels = serializers.ListField(child=serializers.IntegerField())
    remind_every_seconds = serializers.IntegerField(required=False, allow_null=True)
    enabled = serializers.BooleanField(required=False)


class IncidentSerializer(serializers.ModelSerializer):
    class Meta:
        model = Incident
        fields = [
            *("id", "rule", "job", "event", "occurrences", "first_run", "last_run"),
            *("opened_at", "last_notified_at", "closed_at"),
        ]
        read_only_fields = fields


class NotificationSerializer(serializers.ModelSerializer):
    class Meta:
        model = Notification
        fields = [
            *("id", "rule", "incident", "job", "run", "channel", "event", "status"),
            *("attempts", "error", "message", "sent_at", "created_at"),
        ]
        read_only_fields = fields
