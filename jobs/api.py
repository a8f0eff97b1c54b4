"""The jobs API: thin views that check the shape of a request and call jobs.services.

Running a job makes a run, which jobs do not know: ``runs.api.JobViewSet`` adds the ``run``
action (and ``run`` in ``bulk``) to this viewset, and the URLs route /api/jobs/ to it.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from drf_spectacular.utils import extend_schema
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from audit.services import audit_context, audit_record
from jobs import handlers, services
from jobs.errors import JobConflict
from jobs.filters import JobFilter
from jobs.models import Job
from jobs.selectors import cron_preview_data
from jobs.serializers import (
    BulkActionSerializer,
    BulkResponseSerializer,
    CronPreviewResultSerializer,
    CronPreviewSerializer,
    HandlerSerializer,
    JobSerializer,
    JobWriteSerializer,
)

ACTION_PERMISSIONS = {
    "pause": "jobs.change_job", "resume": "jobs.change_job", "run": "jobs.change_job", "clone": "jobs.add_job",
}  # fmt: skip
BULK_PERMISSIONS = {**ACTION_PERMISSIONS, "delete": "jobs.delete_job"}
ACTOR_CHECKED = frozenset({"resume", "run"})


class JobViewSet(viewsets.ModelViewSet):
    queryset = Job.objects.all()
    serializer_class = JobSerializer
    permission_model = Job
    filterset_class = JobFilter
    search_fields = ["id", "name", "shown_target"]  # not url or command: see Job.shown_target
    ordering_fields = ["id", "name", "created_at", "updated_at", "next_run_at", "last_run_at", "run_count"]
    ordering = ["id"]
    lookup_value_regex = r"[^/]+"
    #: The services ``bulk`` applies, by action (``runs.api.JobViewSet`` adds ``run``).
    bulk_services: dict[str, Callable[..., Any]] = {
        "pause": services.job_pause,
        "resume": services.job_resume,
        "delete": services.job_delete,
    }

    def required_permission(self, request: Request) -> str | None:
        if getattr(self, "action", None) == "bulk":
            data = request.data if isinstance(request.data, dict) else {}
            return BULK_PERMISSIONS.get(str(data.get("action")), "jobs.change_job")
        return ACTION_PERMISSIONS.get(getattr(self, "action", None) or "")

    @extend_schema(request=JobWriteSerializer, responses={201: JobSerializer})
    def create(self, request: Request, *args: object, **kwargs: object) -> Response:
        job = services.job_create(data=self._write_data(request, partial=False), actor=request.user)
        return Response(JobSerializer(job).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=JobWriteSerializer, responses={200: JobSerializer})
    def update(self, request: Request, *args: object, **kwargs: object) -> Response:
        job = self.get_object()
        data = self._write_data(request, partial=bool(kwargs.get("partial", False)))
        return Response(JobSerializer(services.job_update(job=job, data=data, actor=request.user)).data)

    @extend_schema(request=JobWriteSerializer, responses={200: JobSerializer})
    def partial_update(self, request: Request, *args: object, **kwargs: object) -> Response:
        return self.update(request, *args, partial=True, **kwargs)

    def destroy(self, request: Request, *args: object, **kwargs: object) -> Response:
        services.job_delete(job=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=None, responses={200: JobSerializer})
    @action(detail=True, methods=["post"])
    def pause(self, request: Request, pk: str | None = None) -> Response:
        return Response(JobSerializer(services.job_pause(job=self.get_object())).data)

    @extend_schema(request=None, responses={200: JobSerializer})
    @action(detail=True, methods=["post"])
    def resume(self, request: Request, pk: str | None = None) -> Response:
        return Response(JobSerializer(services.job_resume(job=self.get_object(), actor=request.user)).data)

    @extend_schema(request=JobWriteSerializer, responses={201: JobSerializer})
    @action(detail=True, methods=["post"])
    def clone(self, request: Request, pk: str | None = None) -> Response:
        """Create a copy of the job under a new id, paused unless the body gives a status; the body's
        other fields change the copy. Secrets are copied from the stored job."""
        source = self.get_object()
        job = services.job_clone(source=source, data=self._write_data(request, partial=True), actor=request.user)
        return Response(JobSerializer(job).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=BulkActionSerializer, responses={200: BulkResponseSerializer})
    @action(detail=False, methods=["post"])
    def bulk(self, request: Request) -> Response:
        """Apply one action to many jobs; each id gets its own result, so one bad id stops nothing."""
        serializer = BulkActionSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        name, ids = serializer.validated_data["action"], serializer.validated_data["ids"]
        jobs = Job.objects.in_bulk(ids)
        service = self.bulk_services[name]
        if name in ACTOR_CHECKED:  # the services that refuse a user without the shell permission
            service = partial(service, actor=request.user)
        with audit_context(bulk=name):  # each job's own entry says it came from this bulk action
            results = [_bulk_one(service, jobs.get(job_id), job_id) for job_id in dict.fromkeys(ids)]
        audit_record(action="bulk", details={"action": name, "results": results})
        return Response({"action": name, "results": results})

    def http_method_not_allowed(self, request: Request, *args: Any, **kwargs: Any) -> Response:  # type: ignore[override]  # as DRF's own stub: Django's View takes an HttpRequest
        # /api/jobs/bulk/ is also where a job called "bulk" would be: the id is reserved
        # (jobs.models.RESERVED_JOB_IDS), so asked for as a job, the answer is that there is none.
        if "bulk" in getattr(self, "action_map", {}).values() and request.method in ("GET", "PUT", "PATCH", "DELETE"):
            raise NotFound()
        return super().http_method_not_allowed(request, *args, **kwargs)

    def _write_data(self, request: Request, *, partial: bool) -> dict[str, Any]:
        serializer = JobWriteSerializer(data=request.data, partial=partial)
        serializer.is_valid(raise_exception=True)
        return dict(serializer.validated_data)


def _bulk_one(service: Callable[..., object], job: Job | None, job_id: str) -> dict[str, Any]:
    if job is None:
        return {"id": job_id, "ok": False, "error": "Not found."}
    try:
        service(job=job)
    except ValidationError as exc:
        return {"id": job_id, "ok": False, "error": " ".join(exc.messages)}
    except JobConflict as exc:
        return {"id": job_id, "ok": False, "error": exc.message}
    except PermissionDenied as exc:
        return {"id": job_id, "ok": False, "error": str(exc)}
    return {"id": job_id, "ok": True, "error": None}


class CronPreviewView(APIView):
    """GET /api/cron/preview/?expr=…&timezone=…&count=5: the next fire times, or 400 with the reason."""

    @extend_schema(parameters=[CronPreviewSerializer], responses={200: CronPreviewResultSerializer})
    def get(self, request: Request) -> Response:
        query = CronPreviewSerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        return Response(cron_preview_data(**query.validated_data))


class HandlerListView(APIView):
    """GET /api/handlers/: the scripts a python job can name, with their parameters."""

    permission_model = Job  # read by those who may read jobs

    @extend_schema(responses={200: HandlerSerializer(many=True)})
    def get(self, request: Request) -> Response:
        return Response(HandlerSerializer(handlers.list_handlers(), many=True).data)
