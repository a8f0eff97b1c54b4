"""``/api/calendars/``: calendars and their windows, written through ``calendars.services``; and
``/api/jobs/{id}/preview/``, a job's next fires after its calendars (which jobs cannot read)."""

from __future__ import annotations

from typing import Any

from django.db.models import Prefetch
from django.shortcuts import get_object_or_404
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from calendars import services
from calendars.ics import import_ics
from calendars.models import Calendar, Window
from calendars.preview import MAX_PREVIEW, job_preview
from calendars.serializers import CalendarSerializer, CalendarWriteSerializer, IcsImportSerializer
from jobs.models import Job
from jobs.serializers import CronPreviewSerializer, PreviewAfterField
from jobs.triggers import MAX_JITTER_SECONDS, DstPolicy


class CalendarViewSet(viewsets.ModelViewSet):
    queryset = Calendar.objects.prefetch_related(Prefetch("windows", queryset=Window.objects.order_by("start", "id")))
    serializer_class = CalendarSerializer
    permission_model = Calendar
    search_fields = ["name"]
    ordering_fields = ["id", "name", "created_at", "updated_at"]
    ordering = ["name"]
    parser_classes = [JSONParser, MultiPartParser, FormParser]

    def required_permission(self, request: Request) -> str | None:
        return "calendars.change_calendar" if getattr(self, "action", None) == "import_ics" else None

    @extend_schema(request=CalendarWriteSerializer, responses={201: CalendarSerializer})
    def create(self, request: Request, *args: object, **kwargs: object) -> Response:
        calendar = services.calendar_create(data=self._write_data(request, partial=False))
        return Response(CalendarSerializer(self._fresh(calendar)).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=CalendarWriteSerializer, responses={200: CalendarSerializer})
    def update(self, request: Request, *args: object, **kwargs: object) -> Response:
        calendar = self.get_object()
        partial = bool(kwargs.get("partial", False))
        data = self._write_data(request, partial=partial)
        calendar = services.calendar_update(calendar=calendar, data=data, partial=partial)
        return Response(CalendarSerializer(self._fresh(calendar)).data)

    @extend_schema(request=CalendarWriteSerializer, responses={200: CalendarSerializer})
    def partial_update(self, request: Request, *args: object, **kwargs: object) -> Response:
        return self.update(request, *args, partial=True, **kwargs)

    def destroy(self, request: Request, *args: object, **kwargs: object) -> Response:
        services.calendar_delete(calendar=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request={"multipart/form-data": IcsImportSerializer}, responses={200: CalendarSerializer})
    @action(detail=True, methods=["post"], url_path="import-ics")
    def import_ics(self, request: Request, pk: str | None = None) -> Response:
        """Add the events of an .ics file (multipart ``file``) as windows; ``replace`` drops the old ones."""
        calendar = self.get_object()
        form = IcsImportSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        result = import_ics(calendar=calendar, content=form.validated_data["file"].read(),
                            replace=form.validated_data["replace"])  # fmt: skip
        body = CalendarSerializer(self._fresh(calendar)).data
        return Response({**body, "imported": result.added, "skipped_events": result.skipped})

    def _fresh(self, calendar: Calendar) -> Calendar:
        return self.get_queryset().get(pk=calendar.pk)

    def _write_data(self, request: Request, *, partial: bool) -> dict[str, Any]:
        serializer = CalendarWriteSerializer(data=request.data, partial=partial)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        if "windows" in data:
            data["windows"] = [dict(window) for window in data["windows"]]
        return data


class JobPreviewQuerySerializer(serializers.Serializer):
    count = serializers.IntegerField(required=False, default=10, min_value=1, max_value=MAX_PREVIEW)
    after = PreviewAfterField(required=False, help_text=gettext_lazy("Fires after this time (default: now)."))


class JobPreviewView(APIView):
    """GET /api/jobs/{id}/preview/?count=N&after=…: the job's next fires after its jitter, DST
    policy and calendars, each marked ``moved`` or ``skipped`` with the reasons."""

    permission_model = Job  # read by those who may read jobs

    @extend_schema(parameters=[JobPreviewQuerySerializer], responses={200: OpenApiTypes.OBJECT})
    def get(self, request: Request, job_id: str) -> Response:
        job = get_object_or_404(Job, pk=job_id)
        query = JobPreviewQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        after = query.validated_data.get("after") or timezone.now()
        return Response(job_preview(job=job, after=after, count=query.validated_data["count"]))


class DraftPreviewQuerySerializer(CronPreviewSerializer):
    """A job being written, not saved yet (the admin form as it is typed): its schedule and what
    moves its fires. ``id`` gives the jitter's offset (derived from it); without one, none. The
    expression, zone, count and ``after`` are read as the cron preview reads them."""

    expr = serializers.CharField(max_length=200, required=False, allow_blank=True, help_text=gettext_lazy("a cron"))
    interval_seconds = serializers.IntegerField(required=False, allow_null=True, min_value=1)
    id = serializers.CharField(max_length=100, required=False, allow_blank=True)
    jitter_seconds = serializers.IntegerField(required=False, default=0, min_value=0, max_value=MAX_JITTER_SECONDS)
    dst_policy = serializers.ChoiceField(choices=DstPolicy.choices, required=False, default=DstPolicy.SHIFT_ONCE)
    blackout_policy = serializers.ChoiceField(
        choices=Job.BlackoutPolicy.choices, required=False, default=Job.BlackoutPolicy.SKIP
    )
    calendars = serializers.CharField(
        required=False, allow_blank=True, help_text=gettext_lazy("calendar ids, comma-separated")
    )

    def validate_expr(self, value: str) -> str:
        return super().validate_expr(value) if value else value

    def validate_calendars(self, value: str) -> list[int]:
        try:
            ids = [int(part) for part in value.split(",") if part.strip()]
        except ValueError:
            raise serializers.ValidationError(_("Calendar ids, comma-separated: 1,2.")) from None
        missing = sorted(set(ids) - set(Calendar.objects.filter(pk__in=ids).values_list("pk", flat=True)))
        if missing:
            message = _("No calendar with the id(s) %(ids)s.") % {"ids": ", ".join(map(str, missing))}
            raise serializers.ValidationError(message)
        return ids

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if bool(attrs.get("expr")) == bool(attrs.get("interval_seconds")):
            raise serializers.ValidationError({"expr": [_("Give a cron expression (expr) or interval_seconds.")]})
        return attrs


class DraftPreviewView(APIView):
    """GET /api/cron/preview/job/?expr=…&id=…&jitter_seconds=…&dst_policy=…&calendars=1,2: the next
    fires of a job as it is being written, after its jitter, DST policy and calendars, each marked
    ``moved`` or ``skipped`` with the reasons (the same walk as ``/api/jobs/{id}/preview/``)."""

    permission_model = Job

    @extend_schema(parameters=[DraftPreviewQuerySerializer], responses={200: OpenApiTypes.OBJECT})
    def get(self, request: Request) -> Response:
        query = DraftPreviewQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        given = query.validated_data
        job = Job(
            id=given.get("id") or "",
            trigger=Job.Trigger.CRON if given.get("expr") else Job.Trigger.INTERVAL,
            cron=given.get("expr") or "",
            interval_seconds=given.get("interval_seconds"),
            timezone=given["timezone"],
            jitter_seconds=given["jitter_seconds"] if given.get("id") else 0,
            dst_policy=given["dst_policy"],
            blackout_policy=given["blackout_policy"],
            calendars=given.get("calendars") or [],
        )
        after = given.get("after") or timezone.now()
        return Response(job_preview(job=job, after=after, count=given["count"]))
