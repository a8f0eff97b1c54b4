from __future__ import annotations

from django.contrib import admin
from django.urls import include, path
from rest_framework.routers import DefaultRouter

from crontask import views
from jobs.api import CronPreviewView, JobViewSet
from runs.api import JobRunsView, RunViewSet

router = DefaultRouter()
router.register("jobs", JobViewSet, basename="job")
router.register("runs", RunViewSet, basename="run")

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/health/", views.health, name="api-health"),
    path("api/cron/preview/", CronPreviewView.as_view(), name="cron-preview"),
    path("api/jobs/<str:job_id>/runs/", JobRunsView.as_view(), name="job-runs"),
    path("api/", include(router.urls)),
    path("api-auth/", include("rest_framework.urls")),
    path("health", views.health, name="health"),
]
