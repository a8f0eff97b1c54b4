"""The runs API, and the actions that make a run (the jobs' run now and bulk run, a run's rerun)."""

from __future__ import annotations

import re

from django.db.models import QuerySet
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import generics, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.response import Response

from core.pagination import FeedPagination
from jobs import api as jobs_api
from jobs.models import Job
from jobs.serializers import RunNowSerializer
from runs import cancellation, enqueue, selectors
from runs.filters import RunFilter
from runs.models import Run
from runs.serializers import (
    LARGE_TEXT_FIELDS,
    RunListSerializer,
    RunLogQuerySerializer,
    RunLogSerializer,
    RunSerializer,
)


# /api/jobs/: the jobs' viewset with the actions that queue a run (``run``, bulk ``run``). (A
# comment, not a docstring: drf-spectacular would make a docstring every operation's description.)
class JobViewSet(jobs_api.JobViewSet):
    bulk_services = {**jobs_api.JobViewSet.bulk_services, "run": enqueue.job_run_now}

    @extend_schema(request=RunNowSerializer, responses={202: RunSerializer})
    @action(detail=True, methods=["post"])
    def run(self, request: Request, pk: str | None = None) -> Response:
        job = self.get_object()
        overrides = RunNowSerializer(data=request.data if request.data else {}, context={"job": job})
        overrides.is_valid(raise_exception=True)
        run = enqueue.job_run_now(job=job, overrides=overrides.validated_data, actor=request.user)
        return Response(RunSerializer(run).data, status=status.HTTP_202_ACCEPTED)


class RunViewSet(viewsets.ReadOnlyModelViewSet):
    queryset = Run.objects.all()
    permission_model = Run
    pagination_class = FeedPagination  # ?cursor= for a feed of millions; counts capped
    filterset_class = RunFilter
    search_fields: list[str] = []
    ordering_fields = ["id", "started_at", "scheduled_for", "duration_ms"]
    ordering = ["-id"]

    def get_queryset(self) -> QuerySet[Run]:
        # A list shows no captured text (RunListSerializer): reading it would fetch up to
        # megabytes a row (out of line, TOAST) for a page that drops it.
        return Run.objects.defer(*LARGE_TEXT_FIELDS) if self.action == "list" else Run.objects.all()

    def get_serializer_class(self) -> type:
        return RunListSerializer if self.action == "list" else RunSerializer

    def required_permission(self, request: Request) -> str | None:
        # A rerun is a run now of the run's job: the job's permission, as for /api/jobs/{id}/run/.
        action_name = getattr(self, "action", None)
        if action_name == "rerun":
            return jobs_api.ACTION_PERMISSIONS["run"]
        return "runs.cancel_run" if action_name == "cancel" else None

    @extend_schema(request=None, responses={200: RunSerializer, 202: RunSerializer})
    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, pk: str | None = None) -> Response:
        """Cancel the run: 200 with it cancelled if it was queued; 202 if it is running (it ends
        ``cancelled`` within CRONTASK_CANCEL_GRACE_SECONDS); 409 if it has ended."""
        run = cancellation.run_cancel(run=self.get_object(), actor=request.user)
        code = status.HTTP_202_ACCEPTED if run.status == Run.Status.RUNNING else status.HTTP_200_OK
        return Response(RunSerializer(run).data, status=code)

    @extend_schema(request=None, responses={202: RunSerializer})
    @action(detail=True, methods=["post"])
    def rerun(self, request: Request, pk: str | None = None) -> Response:
        """Queue a new manual run of the run's job with the run's one-off values (run now, again)."""
        run = enqueue.run_again(run=self.get_object(), actor=request.user)
        return Response(RunSerializer(run).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(parameters=[RunLogQuerySerializer], responses={200: RunLogSerializer})
    @action(detail=True, methods=["get"])
    def log(self, request: Request, pk: str | None = None) -> Response:
        """The run's log and output after the offsets the reader has: to follow a run as it goes."""
        query = RunLogQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        # A run's id is a bigint: anything else names no run (and must not reach the database).
        found = None
        if pk is not None and re.fullmatch(r"[0-9]{1,18}", pk):
            found = selectors.run_log(run_id=int(pk), **query.offsets())
        if found is None:
            raise NotFound()
        return Response(RunLogSerializer(found).data)


class JobRunsView(generics.ListAPIView):
    """GET /api/jobs/{id}/runs/: one job's runs, newest first, with the run filters."""

    serializer_class = RunListSerializer
    permission_model = Run
    pagination_class = FeedPagination
    filterset_class = RunFilter
    search_fields: list[str] = []
    ordering_fields = RunViewSet.ordering_fields
    ordering = ["-id"]

    def get_queryset(self) -> QuerySet[Run]:
        if getattr(self, "swagger_fake_view", False):  # schema generation
            return Run.objects.none()
        job = get_object_or_404(Job.objects.only("pk"), pk=self.kwargs["job_id"])
        return Run.objects.filter(job=job).defer(*LARGE_TEXT_FIELDS)  # as RunViewSet's list
