from __future__ import annotations

from typing import Any

from django.utils.translation import gettext_lazy as _
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


class RunLogQuerySerializer(serializers.Serializer):
    """GET /api/runs/{id}/log/'s query: where the reader is in each text (characters)."""

    after = serializers.IntegerField(
        min_value=0, required=False, help_text=_("The offset in both texts (a run has one of them); default 0.")
    )
    log_after = serializers.IntegerField(min_value=0, required=False, help_text=_("The offset in log_output."))
    output_after = serializers.IntegerField(min_value=0, required=False, help_text=_("The offset in output."))

    def offsets(self) -> dict[str, int]:
        data = self.validated_data
        after = data.get("after", 0)
        return {"log_after": data.get("log_after", after), "output_after": data.get("output_after", after)}


class RunLogSerializer(serializers.Serializer):
    """What a run has logged (python) and output (shell) after the offsets asked for."""

    id = serializers.IntegerField()
    status = serializers.ChoiceField(choices=Run.Status.choices)
    finished = serializers.BooleanField(help_text=_("The run has ended: its text will not grow any more."))
    log_output = serializers.CharField(
        allow_blank=True, help_text=_("log_output after log_after (all of it if reset).")
    )
    log_offset = serializers.IntegerField(help_text=_("The length of log_output: the next log_after."))
    log_reset = serializers.BooleanField(help_text=_("log_after was past the end: log_output is the whole text."))
    output = serializers.CharField(allow_blank=True, help_text=_("output after output_after (all of it if reset)."))
    output_offset = serializers.IntegerField(help_text=_("The length of output: the next output_after."))
    output_reset = serializers.BooleanField(help_text=_("output_after was past the end: output is the whole text."))
