from __future__ import annotations

from typing import Any

from rest_framework import serializers

from jobs.secrets import mask_overrides
from runs.models import Run

LARGE_TEXT_FIELDS = ("response_body", "output", "log_output", "traceback", "result", "overrides")


class RunSerializer(serializers.ModelSerializer):
    """A run in full: the detail view."""

    class Meta:
        model = Run
        fields = "__all__"
        read_only_fields = [f.name for f in Run._meta.fields]

    def to_representation(self, instance: Run) -> dict[str, Any]:
        data = super().to_representation(instance)
        data["overrides"] = mask_overrides(data["overrides"])
        return data


class RunListSerializer(serializers.ModelSerializer):
    """A run in a list: without its large captured text, which the detail view has."""

    class Meta:
        model = Run
        exclude = LARGE_TEXT_FIELDS
        read_only_fields = [f.name for f in Run._meta.fields]
