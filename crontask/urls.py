from __future__ import annotations

from django.contrib import admin
from django.templatetags.static import static
from django.urls import include, path
from django.views.generic import RedirectView
from django.views.i18n import JavaScriptCatalog
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.routers import DefaultRouter

from alerts.api import AlertRuleViewSet, ChannelViewSet, IncidentViewSet, NotificationViewSet
from audit.api import AuditEntryViewSet
from calendars.api import CalendarViewSet, DraftPreviewView, JobPreviewView
from jobs.api import CronPreviewView, HandlerListView, JobVersionDetailView, JobVersionListView, JobVersionRevertView
from monitoring.dashboard import dashboard
from monitoring.staff import preferences
from monitoring.views import HealthView, metrics_view
from runs.api import JobRunsView, JobViewSet, RunViewSet
from weizhi import views as weizhi

router = DefaultRouter()
router.register("jobs", JobViewSet, basename="job")
router.register("runs", RunViewSet, basename="run")
router.register("channels", ChannelViewSet, basename="channel")
router.register("alert-rules", AlertRuleViewSet, basename="alert-rule")
router.register("incidents", IncidentViewSet, basename="incident")
router.register("notifications", NotificationViewSet, basename="notification")
router.register("audit", AuditEntryViewSet, basename="audit")
router.register("calendars", CalendarViewSet, basename="calendar")

urlpatterns = [
    # Nothing lives at the site's root but the admin: "View site" and a typed address land there.
    path("", RedirectView.as_view(pattern_name="admin:index"), name="home"),
    path("favicon.ico", RedirectView.as_view(url=static("crontask/favicon.svg"), permanent=True), name="favicon"),
    path("admin/dashboard/", dashboard, name="dashboard"),
    path("admin/preferences/", preferences, name="display-preferences"),
    path("admin/", admin.site.urls),
    # The admin's language switch posts to i18n/setlang/ (Django's set_language: a cookie, then back);
    # jsi18n/ gives our scripts their words (the djangojs catalogue) in the request's language.
    path("i18n/", include("django.conf.urls.i18n")),
    path("jsi18n/", JavaScriptCatalog.as_view(), name="javascript-catalog"),
    path("api/health/", HealthView.as_view(), name="api-health"),
    path("api/handlers/", HandlerListView.as_view(), name="handlers"),
    path("api/cron/preview/", CronPreviewView.as_view(), name="cron-preview"),
    path("api/cron/preview/job/", DraftPreviewView.as_view(), name="draft-preview"),
    path("api/jobs/<str:job_id>/runs/", JobRunsView.as_view(), name="job-runs"),
    path("api/jobs/<str:job_id>/preview/", JobPreviewView.as_view(), name="job-preview"),
    path("api/jobs/<str:job_id>/versions/", JobVersionListView.as_view(), name="job-versions"),
    path("api/jobs/<str:job_id>/versions/<int:number>/", JobVersionDetailView.as_view(), name="job-version"),
    path(
        "api/jobs/<str:job_id>/versions/<int:number>/revert/", JobVersionRevertView.as_view(), name="job-version-revert"
    ),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
    path("api/", include(router.urls)),
    path("api-auth/", include("rest_framework.urls")),
    # The Weizhi Crontask service's paths, for its existing clients.
    path("health", weizhi.health, name="health"),
    path("jobs", weizhi.WeizhiJobsView.as_view(), name="weizhi-jobs"),
    path("jobs/<str:job_id>", weizhi.WeizhiJobView.as_view(), name="weizhi-job"),
    path("jobs/<str:job_id>/runs", weizhi.WeizhiRunsView.as_view(), name="weizhi-job-runs"),
    path("demo/target", weizhi.demo_target, name="demo-target"),
    # Prometheus (monitoring.metrics): protected by CRONTASK_METRICS_TOKEN when it is set.
    path("metrics", metrics_view, name="metrics"),
]

handler404 = "core.views.not_found"
handler500 = "core.views.server_error"
