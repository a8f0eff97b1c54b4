"""The admin as the control room: list, buttons, runs, dashboard."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from jobs import services
from jobs.admin import schedule_text
from jobs.models import Job
from runs.accounting import job_record_run
from runs.models import Run

pytestmark = pytest.mark.django_db
URL = "http://127.0.0.1:9/"


@pytest.mark.parametrize(
    ("data", "text"),
    [
        ({"interval_seconds": 10}, "every 10 seconds"),
        ({"interval_seconds": 5400}, "every 90 minutes"),
        ({"interval_seconds": 3600}, "every hour"),
        ({"cron": "0 9 * * mon-fri", "timezone": "Asia/Shanghai"}, "At 09:00, Monday through Friday (Asia/Shanghai)"),
        ({"cron": "*/10 * * * * *"}, "Every 10 seconds (UTC)"),
        ({}, "by hand"),
    ],
)
def test_the_schedule_is_shown_in_words(data, text):
    assert schedule_text(services.job_create(data={"url": URL, **data})) == text


def test_the_job_list_shows_status_schedule_and_last_run_with_constant_queries(staff, settings):
    settings.CRONTASK_ALLOW_SHELL = True

    def page_queries() -> tuple[int, str]:
        with CaptureQueriesContext(connection) as ctx:
            response = staff.get("/admin/jobs/job/")
        assert response.status_code == 200
        return len(ctx.captured_queries), response.content.decode()

    job = services.job_create(data={"id": "ping", "interval_seconds": 10, "url": URL})
    run = Run.objects.create(job=job, trigger="scheduled", status="failed", started_at=timezone.now())
    assert run.started_at is not None
    job_record_run(job_id="ping", status="failed", started_at=run.started_at)
    few, page = page_queries()
    assert "every 10 seconds" in page
    assert "ct-badge" in page
    assert f"/admin/runs/run/{run.pk}/change/" in page
    # Every kind and trigger, each with a last run (some with several runs, the last one linked).
    shapes: list[dict[str, object]] = [
        {"cron": "* * * * *", "url": URL},
        {"interval_seconds": 90, "kind": "python", "handler": "scripts:http_check", "handler_kwargs": {"url": URL}},
        {"run_at": "2099-01-01T00:00:00+00:00", "kind": "shell", "command": "echo hi"},
        {"url": URL, "method": "POST"},
    ]
    last_runs = []
    for i in range(16):
        other = services.job_create(data={"id": f"j{i:02}", **shapes[i % len(shapes)]})
        for n, status in enumerate(["success", "failed", "timeout"][: 1 + i % 3]):
            started = timezone.now() - timedelta(minutes=10 - n)
            latest = Run.objects.create(job=other, trigger="manual", status=status, started_at=started)
            job_record_run(job_id=other.pk, status=status, started_at=started)
        last_runs.append(latest)
    assert set(Job.objects.values_list("kind", flat=True)) == {"http", "python", "shell"}
    assert set(Job.objects.values_list("trigger", flat=True)) == {"cron", "interval", "date", "manual"}
    many, page = page_queries()
    assert many == few
    for latest in last_runs:
        assert f"/admin/runs/run/{latest.pk}/change/" in page
    assert "once at 2099-01-01 00:00:00 UTC" in page
    assert "by hand" in page


def test_the_buttons_on_the_job_page_run_pause_and_resume(staff, queued_tasks, django_capture_on_commit_callbacks):
    services.job_create(data={"id": "b", "interval_seconds": 10, "url": URL})
    page = staff.get("/admin/jobs/job/b/change/").content.decode()
    assert 'id="ct-run-now"' in page
    assert 'id="ct-pause"' in page
    with django_capture_on_commit_callbacks(execute=True):
        staff.post("/admin/jobs/job/b/run-now/")
    assert Run.objects.get(job_id="b").trigger == "manual"
    assert len(queued_tasks) == 1
    staff.post("/admin/jobs/job/b/pause/")
    assert Job.objects.get(pk="b").status == "paused"
    assert 'id="ct-resume"' in staff.get("/admin/jobs/job/b/change/").content.decode()
    staff.post("/admin/jobs/job/b/resume/")
    assert Job.objects.get(pk="b").status == "active"
    assert staff.get("/admin/jobs/job/b/pause/").status_code == 405


def test_actions_report_what_they_could_not_change(staff):
    services.job_create(data={"id": "sys", "interval_seconds": 10, "url": URL}, is_system=True)
    services.job_create(data={"id": "plain", "interval_seconds": 10, "url": URL})
    response = staff.post(
        "/admin/jobs/job/",
        {"action": "delete_jobs", "_selected_action": ["sys", "plain"], "post": "yes"},
        follow=True,
    )
    text = response.content.decode()
    assert "1 job deleted." in text
    assert "sys: &#x27;sys&#x27; is a system job and cannot be deleted." in text
    assert list(Job.objects.values_list("pk", flat=True)) == ["sys"]


def test_the_job_page_shows_its_recent_runs_and_a_link_to_all(staff):
    job = services.job_create(data={"id": "r", "interval_seconds": 10, "url": URL})
    Run.objects.bulk_create([Run(job=job, trigger="scheduled", status="success") for _ in range(25)])
    page = staff.get("/admin/jobs/job/r/change/").content.decode()
    recent = page[page.index('class="ct-recent-runs"') :]
    assert len(re.findall(r"/admin/runs/run/\d+/change/", recent)) == 20
    strip = page[page.index('id="ct-run-strip"') : page.index("</svg>", page.index('id="ct-run-strip"'))]
    assert len(re.findall(r"/admin/runs/run/\d+/change/", strip)) == 25  # the strip: up to 50 runs
    assert "/admin/runs/run/?job=r" in page
    other = services.job_create(data={"id": "other", "interval_seconds": 10, "url": URL})
    Run.objects.bulk_create([Run(job=other, trigger="scheduled", status="success") for _ in range(3)])
    listing = staff.get("/admin/runs/run/?job=r").content.decode()
    assert len(set(re.findall(r"/admin/runs/run/(\d+)/change/", listing))) == 25
    assert set(re.findall(r"/admin/jobs/job/([^/]+)/change/", listing)) == {"r"}
    assert re.search(r"\b25 results\b", listing)


def test_the_run_page_is_read_only_and_shows_captured_text_readably(staff):
    job = services.job_create(data={"id": "t", "interval_seconds": 10, "url": URL})
    run = Run.objects.create(
        job=job,
        trigger="manual",
        status="failed",
        response_body="<b>body</b>",
        traceback="Traceback (most recent call last):\n  boom",
        log_output="[10:00:00] hi",
    )
    page = staff.get(f"/admin/runs/run/{run.pk}/change/").content.decode()
    assert "&lt;b&gt;body&lt;/b&gt;" in page
    assert "<pre" in page
    assert "Traceback (most recent call last)" in page
    assert "/admin/jobs/job/t/change/" in page
    assert staff.get("/admin/runs/run/add/").status_code == 403
    assert 'name="_save"' not in page


def test_the_run_list_never_counts_the_whole_table(staff):
    job = services.job_create(data={"id": "t", "interval_seconds": 10, "url": URL})
    Run.objects.bulk_create([Run(job=job, trigger="manual", status="success") for _ in range(5)])
    with CaptureQueriesContext(connection) as ctx:
        assert staff.get("/admin/runs/run/").status_code == 200
    counts = [q["sql"] for q in ctx.captured_queries if "COUNT(" in q["sql"].upper()]
    assert counts
    assert all("LIMIT" in sql.upper() for sql in counts), counts


def test_the_dashboard_is_linked_from_the_index_and_renders_without_a_cdn(staff):
    job = services.job_create(data={"id": "d", "interval_seconds": 10, "url": URL})
    now = timezone.now()
    Run.objects.create(job=job, trigger="scheduled", status="success", started_at=now, duration_ms=120)
    Run.objects.create(
        job=job, trigger="scheduled", status="failed", started_at=now - timedelta(hours=2), duration_ms=80
    )
    Run.objects.create(job=job, trigger="scheduled", status="running", started_at=now)
    Job.objects.filter(pk="d").update(run_count=2, failure_count=1, success_count=1)
    assert "/admin/dashboard/" in staff.get("/admin/").content.decode()
    page = staff.get("/admin/dashboard/").content.decode()
    assert "<svg" in page
    assert "1 succeeded" in page
    assert "1 failed" in page
    assert "50%" in page
    assert "avg 100 ms" in page
    assert "Running now (1)" in page
    assert not re.search(r"<(script|link)[^>]+(src|href)=\"https?://", page)


def test_the_beat_tables_are_not_offered_for_editing(staff):
    assert staff.get("/admin/django_celery_beat/periodictask/").status_code == 404


def listed(client, path: str) -> set[str]:
    response = client.get(path)
    assert response.status_code == 200
    return set(re.findall(r'name="_selected_action" value="([^"]+)"', response.content.decode()))


@pytest.fixture
def assorted_jobs(settings):
    settings.CRONTASK_ALLOW_SHELL = True
    now = timezone.now()
    services.job_create(data={"id": "web-ping", "name": "Ping the shop", "interval_seconds": 60, "url": URL})
    services.job_create(
        data={"id": "nightly", "cron": "0 3 * * *", "kind": "python", "handler": "scripts:http_check",
              "handler_kwargs": {"url": URL}, "status": "paused"}
    )  # fmt: skip
    services.job_create(data={"id": "backup", "kind": "shell", "command": "pg_dump shop"})
    job_record_run(job_id="web-ping", status="failed", started_at=now)
    job_record_run(job_id="nightly", status="success", started_at=now)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", {"web-ping", "nightly", "backup"}),
        ("status__exact=paused", {"nightly"}),
        ("status__exact=active", {"web-ping", "backup"}),
        ("kind__exact=shell", {"backup"}),
        ("kind__exact=python", {"nightly"}),
        ("trigger__exact=interval", {"web-ping"}),
        ("trigger__exact=manual", {"backup"}),
        ("last_run_status=failed", {"web-ping"}),
        ("last_run_status=success", {"nightly"}),
        ("last_run_status=timeout", set()),
        ("q=shop", {"web-ping", "backup"}),  # name and command
        ("q=http_check", {"nightly"}),  # handler
        ("q=backup", {"backup"}),  # id
        ("kind__exact=http&q=shop", {"web-ping"}),
    ],
)
def test_the_job_list_filters_and_search_filter(staff, assorted_jobs, query, expected):
    assert listed(staff, f"/admin/jobs/job/?{query}") == expected


def test_the_job_list_filters_read_no_distinct_values_of_the_table(staff, assorted_jobs):
    with CaptureQueriesContext(connection) as ctx:
        page = staff.get("/admin/jobs/job/").content.decode()
    assert "?last_run_status=failed" in page
    assert not [q["sql"] for q in ctx.captured_queries if "DISTINCT" in q["sql"].upper()]


def test_the_run_list_reads_no_captured_text_and_no_distinct_days(staff):
    job = services.job_create(data={"id": "big", "interval_seconds": 10, "url": URL})
    run = Run.objects.create(
        job=job, trigger="manual", status="failed", started_at=timezone.now(), response_body="b" * 5000,
        output="o" * 5000, log_output="l" * 5000, traceback="t" * 5000, result={"big": "r" * 5000},
    )  # fmt: skip
    with CaptureQueriesContext(connection) as ctx:
        response = staff.get("/admin/runs/run/")
    assert response.status_code == 200
    assert f"/admin/runs/run/{run.pk}/change/" in response.content.decode()
    reads = [q["sql"] for q in ctx.captured_queries if "runs_run" in q["sql"]]
    assert reads
    assert not [sql for sql in reads if "DISTINCT" in sql.upper()]
    for column in ("response_body", "output", "log_output", "traceback", "result", "overrides", "error"):
        assert not [sql for sql in reads if f'"{column}"' in sql], column
    assert not [sql for sql in reads if "jobs_job" in sql]  # the job column needs no join


def test_the_run_list_filters_by_date_without_a_date_hierarchy(staff):
    job = services.job_create(data={"id": "d", "interval_seconds": 10, "url": URL})
    now = timezone.now()
    recent = Run.objects.create(job=job, trigger="scheduled", status="success", started_at=now - timedelta(days=2))
    old = Run.objects.create(job=job, trigger="scheduled", status="success", started_at=now - timedelta(days=20))
    page = staff.get("/admin/runs/run/").content.decode()
    links = dict(
        (text, href) for href, text in re.findall(r'<a href="(\?started_at__gte=[^"]+)"[^>]*>([^<]+)</a>', page)
    )
    assert {"Today", "Past 7 days"} <= set(links)
    week = staff.get("/admin/runs/run/" + links["Past 7 days"].replace("&amp;", "&")).content.decode()
    shown = set(re.findall(r"/admin/runs/run/(\d+)/change/", week))
    assert shown == {str(recent.pk)}
    assert str(old.pk) not in shown
