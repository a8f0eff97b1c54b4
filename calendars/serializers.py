from __future__ import annotations

from django.utils.translation import gettext_lazy as _
from rest_framework import serializers

from calendars.models import MAX_DURATION_SECONDS, Calendar, Window


class WindowSerializer(serializers.ModelSerializer):
    class Meta:
        model = Window
        fields = ["id", "kind", "name", "start", "end", "cron", "duration_seconds"]
        read_only_fields = fields


class CalendarSerializer(serializers.ModelSerializer):
    windows = WindowSerializer(many=True, read_only=True)

    class Meta:
        model = Calendar
        fields = ["id", "name", "description", "time_zone", "windows", "created_at", "updated_at"]
        read_only_fields = fields


class WindowWriteSerializer(serializers.Serializer):
    """A window as a client gives it; ``calendars.services.window_prepare`` checks the rest."""

    kind = serializers.ChoiceField(choices=Window.Kind.choices, required=False)
    name = serializers.CharField(required=False, allow_blank=True, max_length=200)
    start = serializers.CharField(
        required=False, allow_blank=True, help_text=_("ISO 8601; without an offset, read in the calendar's zone.")
    )
    end = serializers.CharField(required=False, allow_blank=True, help_text=_("ISO 8601; excluded."))
    cron = serializers.CharField(required=False, allow_blank=True, max_length=200)
    duration_seconds = serializers.IntegerField(
        required=False, allow_null=True, min_value=1, max_value=MAX_DURATION_SECONDS
    )


class CalendarWriteSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    description = serializers.CharField(required=False, allow_blank=True, max_length=10000)
    time_zone = serializers.CharField(required=False, max_length=64)
    windows = WindowWriteSerializer(many=True, required=False, help_text=_("Replaces the calendar's windows."))


class IcsImportSerializer(serializers.Serializer):
    file = serializers.FileField()
    replace = serializers.BooleanField(required=False, default=False)
