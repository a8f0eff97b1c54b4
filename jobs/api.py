"""The jobs API: thin views that check the shape of a request and call jobs.services."""

from __future__ import annotations

from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from jobs import services
from jobs.filters import JobFilter
from jobs.models import Job
from jobs.selectors import cron_preview_data
from jobs.serializers import CronPreviewSerializer, JobSerializer, JobWriteSerializer, RunNowSerializer
from runs.serializers import RunSerializer

ACTION_PERMISSIONS = {"pause": "jobs.change_job", "resume": "jobs.change_job", "run": "jobs.change_job"}


class JobViewSet(viewsets.ModelViewSet):
    queryset = Job.objects.all()
    serializer_class = JobSerializer
    permission_model = Job
    filterset_class = JobFilter
    search_fields = ["id", "name", "url", "handler", "command"]
    ordering_fields = ["id", "name", "created_at", "updated_at", "next_run_at", "last_run_at", "run_count"]
    ordering = ["id"]
    lookup_value_regex = r"[^/]+"

    def required_permission(self, request: Request) -> str | None:
        return ACTION_PERMISSIONS.get(getattr(self, "action", None) or "")

    def create(self, request: Request, *args: object, **kwargs: object) -> Response:
        data = self._write_data(request, partial=False)
        job = services.job_create(data=data)
        return Response(JobSerializer(job).data, status=status.HTTP_201_CREATED)

    def update(self, request: Request, *args: object, **kwargs: object) -> Response:
        data = self._write_data(request, partial=kwargs.get("partial", False))
        job = services.job_update(job=self.get_object(), data=data)
        return Response(JobSerializer(job).data)

    def destroy(self, request: Request, *args: object, **kwargs: object) -> Response:
        services.job_delete(job=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @action(detail=True, methods=["post"])
    def pause(self, request: Request, pk: str | None = None) -> Response:
        return Response(JobSerializer(services.job_pause(job=self.get_object())).data)

    @action(detail=True, methods=["post"])
    def resume(self, request: Request, pk: str | None = None) -> Response:
        return Response(JobSerializer(services.job_resume(job=self.get_object())).data)

    @action(detail=True, methods=["post"], serializer_class=RunNowSerializer)
    def run(self, request: Request, pk: str | None = None) -> Response:
        overrides = RunNowSerializer(data=request.data or {})
        overrides.is_valid(raise_exception=True)
        run = services.job_run_now(job=self.get_object(), overrides=overrides.validated_data)
        return Response(RunSerializer(run).data, status=status.HTTP_202_ACCEPTED)

    def _write_data(self, request: Request, *, partial: bool) -> dict:
        serializer = JobWriteSerializer(data=request.data, partial=partial)
        serializer.is_valid(raise_exception=True)
        return dict(serializer.validated_data)


class CronPreviewView(APIView):
    """GET /api/cron/preview/?expr=…&timezone=…&count=5: the next fire times, or 400 with the reason."""

    def get(self, request: Request) -> Response:
        query = CronPreviewSerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        return Response(cron_preview_data(**query.validated_data))
