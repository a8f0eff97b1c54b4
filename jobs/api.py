"""The jobs API: thin views that check the shape of a request and call jobs.services.

Running a job makes a run, which jobs do not know: ``runs.api.JobViewSet`` adds the ``run``
action (and ``run`` in ``bulk``) to this viewset, and the URLs route /api/jobs/ to it.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from functools import partial
from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import QuerySet
from django.shortcuts import get_object_or_404
from django.utils.translation import gettext as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import generics, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from audit.services import audit_context, audit_record
from core import origin
from jobs import handlers, services
from jobs.dependencies import job_graph
from jobs.errors import JobConflict
from jobs.filters import JobFilter
from jobs.importer import ImportSummary, Invalid, import_entries
from jobs.models import Job, JobVersion
from jobs.selectors import cron_preview_data
from jobs.serializers import (
    BulkActionSerializer,
    BulkResponseSerializer,
    CronPreviewResultSerializer,
    CronPreviewSerializer,
    HandlerSerializer,
    ImportRequestSerializer,
    ImportResponseSerializer,
    JobGraphSerializer,
    JobSerializer,
    JobVersionDetailSerializer,
    JobVersionSerializer,
    JobWriteSerializer,
    PauseSerializer,
    RestoreSerializer,
    RevertSerializer,
)
from jobs.versions import versions_of

ACTION_PERMISSIONS = {
    "pause": "jobs.change_job", "resume": "jobs.change_job", "run": "jobs.change_job", "clone": "jobs.add_job",
    "restore": "jobs.add_job",
    "import_jobs": "jobs.add_job",  # and jobs.change_job for the entries that update a job
}  # fmt: skip
BULK_PERMISSIONS = {**ACTION_PERMISSIONS, "delete": "jobs.delete_job"}
#: The actions at /api/jobs/<name>/, whose names a job's id cannot take (jobs.models.RESERVED_JOB_IDS).
LIST_ACTIONS = frozenset({"bulk", "restore", "import"})
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
        data = self._write_data(request, partial=False)
        with _reason(data):
            job = services.job_create(data=data, actor=request.user)
        return Response(JobSerializer(job).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=JobWriteSerializer, responses={200: JobSerializer})
    def update(self, request: Request, *args: object, **kwargs: object) -> Response:
        job = self.get_object()
        data = self._write_data(request, partial=bool(kwargs.get("partial", False)))
        with _reason(data):
            return Response(JobSerializer(services.job_update(job=job, data=data, actor=request.user)).data)

    @extend_schema(request=JobWriteSerializer, responses={200: JobSerializer})
    def partial_update(self, request: Request, *args: object, **kwargs: object) -> Response:
        return self.update(request, *args, partial=True, **kwargs)

    def destroy(self, request: Request, *args: object, **kwargs: object) -> Response:
        services.job_delete(job=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=PauseSerializer, responses={200: JobSerializer})
    @action(detail=True, methods=["post"])
    def pause(self, request: Request, pk: str | None = None) -> Response:
        """Pause the job; with ``until`` it resumes by itself at that time."""
        job = self.get_object()
        query = PauseSerializer(data=request.data)
        query.is_valid(raise_exception=True)
        return Response(JobSerializer(services.job_pause(job=job, until=query.validated_data.get("until"))).data)

    @extend_schema(request=None, responses={200: JobSerializer})
    @action(detail=True, methods=["post"])
    def resume(self, request: Request, pk: str | None = None) -> Response:
        return Response(JobSerializer(services.job_resume(job=self.get_object(), actor=request.user)).data)

    @extend_schema(responses={200: JobGraphSerializer})
    @action(detail=True, methods=["get"])
    def graph(self, request: Request, pk: str | None = None) -> Response:
        """The workflow the job is part of: what it waits for (``upstream``), the jobs it fires
        (``downstream``), and every job connected to it through ``after``, as nodes and edges."""
        return Response(JobGraphSerializer(job_graph(self.get_object())).data)

    @extend_schema(request=JobWriteSerializer, responses={201: JobSerializer})
    @action(detail=True, methods=["post"])
    def clone(self, request: Request, pk: str | None = None) -> Response:
        """Create a copy of the job under a new id, paused unless the body gives a status; the body's
        other fields change the copy. Secrets are copied from the stored job."""
        source = self.get_object()
        data = self._write_data(request, partial=True)
        with _reason(data):
            job = services.job_clone(source=source, data=data, actor=request.user)
        return Response(JobSerializer(job).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        request=RestoreSerializer,
        responses={
            201: JobSerializer,
            404: OpenApiResponse(OpenApiTypes.OBJECT, "No versions of that job to restore."),
        },
    )
    @action(detail=False, methods=["post"])
    def restore(self, request: Request) -> Response:
        """Bring a deleted job back from its last version, paused: 404 when it has no versions
        (never existed, or pruned), 409 when a job with that id exists."""
        serializer = RestoreSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        with _reason(data):
            try:
                job = services.job_restore(job_id=data["id"], actor=request.user)
            except JobVersion.DoesNotExist:
                raise NotFound(
                    _("No versions of a job %(id)s to restore it from.") % {"id": repr(data["id"])}
                ) from None
        return Response(JobSerializer(job).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=ImportRequestSerializer, responses={200: ImportResponseSerializer})
    @action(detail=False, methods=["post"], url_path="import", url_name="import")
    def import_jobs(self, request: Request) -> Response:
        """Create or update many jobs at once, by id, as ``manage.py import_jobs`` does: each entry
        validated as any create or update, the new ones written in batches (``jobs.bulk``). One
        result an entry; a bad entry stops nothing. 200 with the results, whatever they are."""
        body = {"jobs": request.data} if isinstance(request.data, list) else request.data
        serializer = ImportRequestSerializer(data=body)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        entries = [entry if isinstance(entry, dict) else Invalid("", _("Not an object.")) for entry in data["jobs"]]
        may_update = request.user.has_perm("jobs.change_job")
        with _reason(data):
            summary = import_entries(entries, dry_run=data["dry_run"], actor=request.user, may_update=may_update)
            if not data["dry_run"]:  # each job's create or update has its own entry too
                audit_record(action="bulk", details={"action": "import", **_counts(summary)})
        return Response(
            {
                "dry_run": data["dry_run"],
                **_counts(summary),
                "results": [
                    {"index": r.index, "id": r.id, "status": r.status, "errors": r.errors} for r in summary.results
                ],
            }
        )

    @extend_schema(request=BulkActionSerializer, responses={200: BulkResponseSerializer})
    @action(detail=False, methods=["post"])
    def bulk(self, request: Request) -> Response:
        """Apply one action to many jobs; each id gets its own result, so one bad id stops nothing."""
        serializer = BulkActionSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        name, ids = serializer.validated_data["action"], serializer.validated_data["ids"]
        jobs = Job.objects.in_bulk(ids)
        service = self.bulk_services[name]
        if (until := serializer.validated_data.get("until")) is not None:
            services.validate_pause_until(until)  # once for all: a 400, not the same error per id
            service = partial(service, until=until)
        if name in ACTOR_CHECKED:  # the services that refuse a user without the shell permission
            service = partial(service, actor=request.user)
        with audit_context(bulk=name):  # each job's own entry says it came from this bulk action
            results = [_bulk_one(service, jobs.get(job_id), job_id) for job_id in dict.fromkeys(ids)]
        audit_record(action="bulk", details={"action": name, "results": results})
        return Response({"action": name, "results": results})

    def http_method_not_allowed(self, request: Request, *args: Any, **kwargs: Any) -> Response:  # type: ignore[override]  # as DRF's own stub: Django's View takes an HttpRequest
        # /api/jobs/bulk/ is also where a job called "bulk" would be (and restore): the ids are reserved
        # (jobs.models.RESERVED_JOB_IDS), so asked for as a job, the answer is that there is none.
        actions = set(getattr(self, "action_map", {}).values())
        if actions & LIST_ACTIONS and request.method in ("GET", "PUT", "PATCH", "DELETE"):
            raise NotFound()
        return super().http_method_not_allowed(request, *args, **kwargs)

    def _write_data(self, request: Request, *, partial: bool) -> dict[str, Any]:
        serializer = JobWriteSerializer(data=request.data, partial=partial)
        serializer.is_valid(raise_exception=True)
        return dict(serializer.validated_data)


def _counts(summary: ImportSummary) -> dict[str, int]:
    return {
        "created": summary.created,
        "updated": summary.updated,
        "unchanged": summary.unchanged,
        "invalid": len(summary.invalid),
    }


def _reason(data: dict[str, Any]) -> AbstractContextManager[object]:
    """The write's ``change_reason`` (taken out of ``data``) as the reason its version records; without
    one, the X-Change-Reason header's (``core.origin``) stands."""
    given = data.pop("change_reason", "")
    return origin.reason(given) if given else nullcontext()


class JobVersionListView(generics.ListAPIView):
    """GET /api/jobs/{id}/versions/: the job's versions, newest first, secrets masked. A deleted
    job's versions too (what a restore brings back)."""

    permission_model = Job
    serializer_class = JobVersionSerializer
    filter_backends: list[Any] = []

    def get_queryset(self) -> QuerySet[JobVersion]:
        return versions_of(self.kwargs["job_id"])

    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        if not versions_of(self.kwargs["job_id"]).exists() and not Job.objects.filter(pk=kwargs["job_id"]).exists():
            raise NotFound()
        return super().list(request, *args, **kwargs)


class JobVersionDetailView(generics.RetrieveAPIView):
    """GET /api/jobs/{id}/versions/{n}/: one version with its ``diff`` against version n-1, masked."""

    permission_model = Job
    serializer_class = JobVersionDetailSerializer

    def get_object(self) -> JobVersion:
        return get_object_or_404(JobVersion, job_id=self.kwargs["job_id"], number=self.kwargs["number"])


class JobVersionRevertView(APIView):
    """POST /api/jobs/{id}/versions/{n}/revert/: the job takes version n's definition through
    ``services.job_revert`` (validated as any update; a new version says it reverted)."""

    permission_model = Job

    def required_permission(self, request: Request) -> str:
        return "jobs.change_job"  # and the shell permission for a shell job: the service checks it

    @extend_schema(request=RevertSerializer, responses={200: JobSerializer})
    def post(self, request: Request, job_id: str, number: int) -> Response:
        serializer = RevertSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        job = get_object_or_404(Job, pk=job_id)
        with _reason(dict(serializer.validated_data)):
            try:
                job = services.job_revert(job=job, number=number, actor=request.user)
            except JobVersion.DoesNotExist:
                raise NotFound(_("Job %(id)r has no version %(number)d.") % {"id": job_id, "number": number}) from None
        return Response(JobSerializer(job).data)


def _bulk_one(service: Callable[..., object], job: Job | None, job_id: str) -> dict[str, Any]:
    if job is None:
        return {"id": job_id, "ok": False, "error": _("Not found.")}
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
