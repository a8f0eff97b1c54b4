from __future__ import annotations

from django.db.models import QuerySet
from django.shortcuts import get_object_or_404
from rest_framework import generics, viewsets

from jobs.models import Job
from runs.filters import RunFilter
from runs.models import Run
from runs.serializers import RunListSerializer, RunSerializer


class RunViewSet(viewsets.ReadOnlyModelViewSet):
    queryset = Run.objects.all()
    permission_model = Run
    filterset_class = RunFilter
    search_fields: list[str] = []
    ordering_fields = ["id", "started_at", "scheduled_for", "duration_ms"]
    ordering = ["-id"]

    def get_serializer_class(self) -> type:
        return RunListSerializer if self.action == "list" else RunSerializer


class JobRunsView(generics.ListAPIView):
    """GET /api/jobs/{id}/runs/: one job's runs, newest first, with the run filters."""

    serializer_class = RunListSerializer
    permission_model = Run
    filterset_class = RunFilter
    search_fields: list[str] = []
    ordering_fields = RunViewSet.ordering_fields
    ordering = ["-id"]

    def get_queryset(self) -> QuerySet[Run]:
        if getattr(self, "swagger_fake_view", False):  # schema generation
            return Run.objects.none()
        job = get_object_or_404(Job.objects.only("pk"), pk=self.kwargs["job_id"])
        return Run.objects.filter(job=job)
