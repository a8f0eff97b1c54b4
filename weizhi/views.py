"""Drop-in paths for clients of the Weizhi Crontask service (its README's API, unchanged).

``GET /health``, ``POST /jobs``, ``GET /jobs/{id}``, ``DELETE /jobs/{id}``, ``GET /jobs/{id}/runs``,
``GET /demo/target``. Same services, same validation (``jobs.preparation``), same auth as /api/;
only the shapes are Weizhi's. With CRONTASK_ALLOW_ANONYMOUS_API their reads need no login (Weizhi's clients never
sent one); writes always do. Errors are 400 with field-keyed messages (Weizhi answered 422) and 409 on a duplicate id.
"""

from __future__ import annotations

from typing import Any

from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.shortcuts import get_object_or_404
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.pagination import _bounded
from jobs import services
from jobs.models import Job
from jobs.secrets import mask_text, masked_job
from jobs.triggers import get_zone
from runs.models import Run


def health(request: HttpRequest) -> JsonResponse:
    """Liveness of the web process and its database: the Weizhi-compatible ``GET /health``."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception:  # noqa: BLE001 - any failure means unhealthy
        return JsonResponse({"status": "error"}, status=503)
    return JsonResponse({"status": "ok"})


class WeizhiJobSerializer(serializers.Serializer):
    id = serializers.CharField(max_length=100)
    cron = serializers.CharField(max_length=200)
    url = serializers.CharField(max_length=2000)
    method = serializers.CharField(required=False, default="GET", max_length=10)
    headers = serializers.JSONField(required=False, allow_null=True)
    body = serializers.CharField(required=False, allow_null=True, allow_blank=True, trim_whitespace=False)


@extend_schema(exclude=True)
class WeizhiJobsView(APIView):
    permission_model = Job

    def post(self, request: Request) -> Response:
        payload = WeizhiJobSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        data = payload.validated_data
        job = services.job_create(
            data={
                "id": data["id"],
                "kind": Job.Kind.HTTP,
                "cron": data["cron"],
                "url": data["url"],
                "method": data["method"].upper(),
                "headers": data.get("headers") or {},
                "body": data.get("body") or "",
            }
        )
        return Response({"id": job.id, "status": "scheduled"})


@extend_schema(exclude=True)
class WeizhiJobView(APIView):
    permission_model = Job
    anonymous_reads = True  # with CRONTASK_ALLOW_ANONYMOUS_API, as the Weizhi service had it

    def get(self, request: Request, job_id: str) -> Response:
        job = get_object_or_404(Job, pk=job_id)
        next_run = job.next_run_at.astimezone(get_zone(job.timezone)).isoformat() if job.next_run_at else None
        shown = masked_job(job)
        return Response(
            {
                "id": job.id,
                "cron": job.cron or None,
                "url": shown["url"] or None,
                "method": job.method,
                "headers": shown["headers"] or None,
                "body": shown["body"] or None,
                "next_run_time": next_run,
                "status": "scheduled" if job.status == Job.Status.ACTIVE else job.status,
            }
        )

    def delete(self, request: Request, job_id: str) -> Response:
        services.job_delete(job=get_object_or_404(Job, pk=job_id))
        return Response({"id": job_id, "status": "deleted"})


@extend_schema(exclude=True)
class WeizhiRunsView(APIView):
    permission_model = Run
    anonymous_reads = True

    def get(self, request: Request, job_id: str) -> Response:
        job = get_object_or_404(Job, pk=job_id)
        limit = _bounded("limit", request.query_params.get("limit", "20"), low=1, high=1000)
        offset = _bounded("offset", request.query_params.get("offset", "0"), low=0, high=10**9)
        runs = Run.objects.filter(job=job).order_by("-id")
        url = mask_text(job.url)
        page = runs.only("status", "status_code", "response_body", "duration_ms", "error", "started_at", "queued_at")[
            offset : offset + limit
        ]
        return Response(
            {"total": runs.count(), "limit": limit, "offset": offset, "items": [_item(job, url, r) for r in page]}
        )


def _item(job: Job, url: str, run: Run) -> dict[str, Any]:
    # response_text and error were masked when the run was stored (runs.outcomes).
    return {
        "job_id": job.id,
        "url": url,
        "cron": job.cron,
        "method": job.method,
        "status_code": run.status_code,
        "ok": run.status == Run.Status.SUCCESS,
        "response_text": run.response_body,
        "elapsed_ms": float(run.duration_ms) if run.duration_ms is not None else None,
        "error": run.error or None,
        "run_at": at.isoformat() if (at := run.started_at or run.queued_at) else None,
    }


@csrf_exempt
def demo_target(request: HttpRequest) -> JsonResponse:
    """A target for demos: answers any method, echoing what it received."""
    return JsonResponse(
        {
            "ok": True,
            "method": request.method,
            "received_bytes": len(request.body),
            "time": timezone.now().isoformat(),
        }
    )
