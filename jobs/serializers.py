"""API shapes for jobs. Serializers check JSON types only: the rules are ``jobs.preparation``'s,
which the services apply (and ``jobs.validators``' for the one-off values of a manual run)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from rest_framework import serializers

from core import origin
from core.serializers import SharedFields
from jobs.models import EDITABLE_FIELDS, STATE_FIELDS, Job, JobVersion
from jobs.preparation import INPUT_ONLY_FIELDS
from jobs.secrets import mask_job_data
from jobs.triggers import get_zone, validate_cron
from jobs.validators import run_override_errors
from jobs.versions import version_diff


class JobSerializer(SharedFields, serializers.ModelSerializer):
    """A job as the API shows it. Its fields are built once (``core.serializers.SharedFields``)."""

    class Meta:
        model = Job
        fields = [*EDITABLE_FIELDS, *STATE_FIELDS]
        read_only_fields = fields

    def to_representation(self, instance: Job) -> dict[str, Any]:
        return mask_job_data(super().to_representation(instance))


CHANGE_REASON = "change_reason"

# The JSON type of each field a client may send (jobs.models.EDITABLE_FIELDS, and the input-only
# ones), as the API reads it and its schema shows it. The status a client sets is active or paused.
WRITE_FIELDS: dict[str, Callable[[], serializers.Field]] = {
    "id": lambda: serializers.CharField(required=False, allow_blank=True, max_length=100),
    "name": lambda: serializers.CharField(required=False, allow_blank=True, max_length=200),
    "description": lambda: serializers.CharField(required=False, allow_blank=True, max_length=10000),
    # Strings only here; the rules (count, length, characters) are jobs.tags', applied by the services.
    "tags": lambda: serializers.ListField(
        child=serializers.CharField(allow_blank=True, trim_whitespace=False), required=False
    ),
    "kind": lambda: serializers.ChoiceField(choices=Job.Kind.choices, required=False),
    "trigger": lambda: serializers.ChoiceField(choices=Job.Trigger.choices, required=False),
    "cron": lambda: serializers.CharField(required=False, allow_blank=True, max_length=200),
    "interval_seconds": lambda: serializers.IntegerField(required=False, allow_null=True),
    "run_at": lambda: serializers.DateTimeField(required=False, allow_null=True),
    "timezone": lambda: serializers.CharField(required=False, max_length=64),
    "jitter_seconds": lambda: serializers.IntegerField(required=False),
    "dst_policy": lambda: serializers.ChoiceField(choices=Job.DstPolicy.choices, required=False),
    "calendars": lambda: serializers.ListField(child=serializers.IntegerField(), required=False, max_length=20),
    "blackout_policy": lambda: serializers.ChoiceField(choices=Job.BlackoutPolicy.choices, required=False),
    "url": lambda: serializers.CharField(required=False, allow_blank=True, max_length=2000),
    "method": lambda: serializers.ChoiceField(choices=Job.Method.choices, required=False),
    "headers": lambda: serializers.JSONField(required=False),
    "body": lambda: serializers.CharField(required=False, allow_blank=True, trim_whitespace=False),
    "follow_redirects": lambda: serializers.BooleanField(required=False),
    "handler": lambda: serializers.CharField(required=False, allow_blank=True, max_length=200),
    "handler_kwargs": lambda: serializers.JSONField(required=False),
    "command": lambda: serializers.CharField(required=False, allow_blank=True, trim_whitespace=False),
    "timeout_seconds": lambda: serializers.IntegerField(required=False),
    "max_retries": lambda: serializers.IntegerField(required=False),
    "retry_backoff_seconds": lambda: serializers.IntegerField(required=False),
    "concurrency_policy": lambda: serializers.ChoiceField(choices=Job.ConcurrencyPolicy.choices, required=False),
    "max_concurrent": lambda: serializers.IntegerField(required=False, allow_null=True),
    "misfire_grace_seconds": lambda: serializers.IntegerField(required=False, allow_null=True),
    "after": lambda: serializers.JSONField(
        required=False,
        help_text=gettext_lazy('[{"job": "<id>", "on": "success" | "failure" | "finish"}]: runs that fire this job.'),
    ),
    "after_mode": lambda: serializers.ChoiceField(choices=Job.AfterMode.choices, required=False),
    "after_window_seconds": lambda: serializers.IntegerField(required=False, allow_null=True),
    "status": lambda: serializers.ChoiceField(choices=[Job.Status.ACTIVE, Job.Status.PAUSED], required=False),
    # Input only: APScheduler-style trigger arguments, normalised to the fields above.
    "trigger_args": lambda: serializers.JSONField(required=False, write_only=True),
    "run_if_past": lambda: serializers.BooleanField(
        required=False, write_only=True, help_text=gettext_lazy("Accept a run_at in the past and run the job now.")
    ),
    # Input only, and not the job's: why, recorded on the version the write makes (as the
    # X-Change-Reason header; this field wins over it).
    CHANGE_REASON: lambda: serializers.CharField(
        required=False,
        allow_blank=True,
        write_only=True,
        max_length=origin.MAX_REASON,
        help_text=gettext_lazy("Why: recorded on the version this write makes (as the X-Change-Reason header)."),
    ),
}


class JobWriteSerializer(SharedFields, serializers.Serializer):
    """The writable fields with their JSON types. Unknown fields are refused; the system's own
    fields (a GET's output sent back in a PUT) are ignored. Its fields are built once
    (``core.serializers.SharedFields``)."""

    def get_fields(self) -> dict[str, serializers.Field]:
        return {name: WRITE_FIELDS[name]() for name in (*EDITABLE_FIELDS, *INPUT_ONLY_FIELDS, CHANGE_REASON)}

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        if not isinstance(data, dict):
            raise serializers.ValidationError({"non_field_errors": [_("Expected a JSON object.")]})
        unknown = sorted(set(data) - set(self.fields) - set(STATE_FIELDS))
        if unknown:
            raise serializers.ValidationError({name: [_("Unknown field.")] for name in unknown})
        known = {key: value for key, value in data.items() if key in self.fields}
        return super().to_internal_value(known)


class RunNowSerializer(serializers.Serializer):
    """One-off values for a manual run, recorded on the run; the job is not changed.

    They are checked by the rules the job's own values pass (``run_override_errors``). Give the
    job as ``context={"job": job}`` for the checks that depend on it (its kind, its handler's
    parameters); without it the rest are made.
    """

    # Values of any type: their rules are the job's, checked in validate() with the job's messages.
    handler_kwargs = serializers.DictField(required=False)
    body = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False)
    headers = serializers.DictField(required=False)

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        if not isinstance(data, dict):
            raise serializers.ValidationError({"non_field_errors": [_("Expected a JSON object.")]})
        unknown = sorted(set(data) - set(self.fields))
        if unknown:
            raise serializers.ValidationError(
                {
                    name: [_("Unknown field: a run takes %(fields)s.") % {"fields": ", ".join(self.fields)}]
                    for name in unknown
                }
            )
        return super().to_internal_value(data)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        errors = run_override_errors(attrs, job=self.context.get("job"))
        if errors:
            raise serializers.ValidationError(errors)
        return attrs


#: The years a preview's ``after`` may name: the walks step fire by fire from it, and near
#: year 1 or 9999 a step (a jitter, a time zone) leaves what a datetime can hold.
PREVIEW_YEARS = (1971, 2200)


class PreviewAfterField(serializers.DateTimeField):
    """A preview's ``after``: a date-time within PREVIEW_YEARS (a 400 naming it, not a 500)."""

    def to_internal_value(self, value: Any) -> Any:
        parsed = super().to_internal_value(value)
        first, last = PREVIEW_YEARS
        if not first <= parsed.year <= last:
            raise serializers.ValidationError(
                _("A date-time in the years %(first)d to %(last)d.") % {"first": first, "last": last}
            )
        return parsed


class CronPreviewSerializer(serializers.Serializer):
    expr = serializers.CharField(max_length=200)
    timezone = serializers.CharField(max_length=64, required=False, default=settings.TIME_ZONE)
    count = serializers.IntegerField(min_value=1, max_value=100, required=False, default=5)
    after = PreviewAfterField(
        required=False,
        allow_null=True,
        help_text=gettext_lazy("List the fires after this time (default: now), to look further on."),
    )

    def validate_expr(self, value: str) -> str:
        return _django_to_drf(validate_cron, value)

    def validate_timezone(self, value: str) -> str:
        return _django_to_drf(get_zone, value)


def _django_to_drf(check: Any, value: str) -> Any:
    """Run one of the shared validators, reporting its message as a DRF field error."""
    try:
        check(value)
    except ValidationError as exc:
        raise serializers.ValidationError(exc.messages) from None
    return value


class CronPreviewResultSerializer(serializers.Serializer):
    expr = serializers.CharField()
    timezone = serializers.CharField()
    description = serializers.CharField()
    next_fire_times = serializers.ListField(child=serializers.DateTimeField())


class PauseSerializer(serializers.Serializer):
    until = serializers.DateTimeField(
        required=False,
        allow_null=True,
        help_text=gettext_lazy("Resume by itself at this time (in the future). Empty: stay paused."),
    )


class BulkActionSerializer(serializers.Serializer):
    action = serializers.ChoiceField(choices=["pause", "resume", "run", "delete"])
    ids = serializers.ListField(child=serializers.CharField(max_length=100), min_length=1, max_length=1000)
    until = serializers.DateTimeField(
        required=False,
        allow_null=True,
        help_text=gettext_lazy("With pause: resume the jobs by themselves at this time."),
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if attrs.get("until") is not None and attrs["action"] != "pause":
            raise serializers.ValidationError({"until": _("Only with the pause action.")})
        return attrs


#: At most this many entries in one POST /api/jobs/import/ (send more in several).
MAX_IMPORT_ENTRIES = 10_000


class ImportRequestSerializer(serializers.Serializer):
    """``{"jobs": [...], "dry_run": false}``, or the list alone: the entries import_jobs reads."""

    jobs = serializers.ListField(child=serializers.JSONField(), min_length=1, max_length=MAX_IMPORT_ENTRIES)
    dry_run = serializers.BooleanField(default=False)
    change_reason = serializers.CharField(required=False, allow_blank=True, max_length=origin.MAX_REASON)


class ImportResultSerializer(serializers.Serializer):
    index = serializers.IntegerField()
    id = serializers.CharField()
    status = serializers.ChoiceField(choices=["created", "updated", "unchanged", "invalid"])
    errors = serializers.DictField(child=serializers.ListField(child=serializers.CharField()))  # type: ignore[assignment]  # a field named "errors", not Serializer.errors (only the schema reads it)


class ImportResponseSerializer(serializers.Serializer):
    dry_run = serializers.BooleanField()
    created = serializers.IntegerField()
    updated = serializers.IntegerField()
    unchanged = serializers.IntegerField()
    invalid = serializers.IntegerField()
    results = ImportResultSerializer(many=True)


class BulkResultSerializer(serializers.Serializer):
    id = serializers.CharField()
    ok = serializers.BooleanField()
    error = serializers.CharField(allow_null=True)


class BulkResponseSerializer(serializers.Serializer):
    action = serializers.CharField()
    results = BulkResultSerializer(many=True)


class HandlerParameterSerializer(serializers.Serializer):
    name = serializers.CharField()
    type = serializers.CharField(allow_null=True)
    required = serializers.BooleanField()  # type: ignore[assignment]  # a field named "required", not Field.required
    default = serializers.JSONField(allow_null=True)
    nullable = serializers.BooleanField()


class HandlerSerializer(serializers.Serializer):
    handler = serializers.CharField()
    name = serializers.CharField()
    description = serializers.CharField(allow_blank=True)
    is_async = serializers.BooleanField()
    accepts_any_kwargs = serializers.BooleanField()
    parameters = HandlerParameterSerializer(many=True)


class JobVersionSerializer(serializers.ModelSerializer):
    """A version, its definition's secrets masked (``jobs.versions.masked_definition``)."""

    definition = serializers.SerializerMethodField()

    class Meta:
        model = JobVersion
        fields = [
            "job_id",
            "number",
            "action",
            "actor",
            "source",
            "reason",
            "created_at",
            "changed_fields",
            "definition",
        ]
        read_only_fields = fields

    def get_definition(self, version: JobVersion) -> dict[str, Any]:
        return mask_job_data(version.definition)


class JobVersionDetailSerializer(JobVersionSerializer):
    """A version with its ``diff`` against the one before: ``{field: {"before": …, "after": …}}``, masked."""

    diff = serializers.SerializerMethodField()

    class Meta(JobVersionSerializer.Meta):
        fields = [*JobVersionSerializer.Meta.fields, "diff"]
        read_only_fields = fields

    def get_diff(self, version: JobVersion) -> dict[str, dict[str, Any]]:
        return version_diff(version)


class RevertSerializer(serializers.Serializer):
    change_reason = serializers.CharField(required=False, allow_blank=True, max_length=origin.MAX_REASON)


class RestoreSerializer(RevertSerializer):
    id = serializers.CharField(max_length=100)


class GraphNodeSerializer(serializers.Serializer):
    id = serializers.CharField()
    name = serializers.CharField()
    exists = serializers.BooleanField(help_text=gettext_lazy("False for an upstream job that was deleted."))
    status = serializers.CharField(allow_null=True)
    trigger = serializers.CharField(allow_null=True)
    current = serializers.BooleanField(help_text=gettext_lazy("The job asked for."))


class GraphEdgeSerializer(serializers.Serializer):
    """``{"from": upstream job, "to": the job its runs fire, "on": …}`` ("from" is a keyword: fields by name)."""

    def get_fields(self) -> dict[str, serializers.Field]:
        return {
            "from": serializers.CharField(help_text=gettext_lazy("The upstream job.")),
            "to": serializers.CharField(help_text=gettext_lazy("The job its runs fire.")),
            "on": serializers.CharField(),
        }


class WaitsForSerializer(serializers.Serializer):
    job = serializers.CharField()
    on = serializers.CharField()
    state = serializers.CharField(help_text=gettext_lazy("The upstream job's status, or 'deleted'."))


class JobGraphSerializer(serializers.Serializer):
    """``GET /api/jobs/{id}/graph/`` (``jobs.dependencies.job_graph``)."""

    job = serializers.CharField()
    upstream = WaitsForSerializer(many=True)
    downstream = serializers.ListField(child=serializers.CharField())
    nodes = GraphNodeSerializer(many=True)
    edges = GraphEdgeSerializer(many=True)
    truncated = serializers.BooleanField()
