"""Workflows in the admin: ``after`` set in the job form (a cycle refused with the API's words), the
job page says what it waits for and what it fires with a small inline graph, and a run's page
links the run that fired it."""

from __future__ import annotations

import html
import json

import pytest

from jobs import services
from jobs.models import Job
from runs.models import Run
from tests.admin.test_admin_basics import form

pytestmark = pytest.mark.django_db
URL = "http://127.0.0.1:9/"


def make(job_id: str, **extra) -> Job:
    return services.job_create(data={"id": job_id, "url": URL, **extra})


def test_after_is_set_in_the_job_form(staff):
    make("load")
    fields = form(id="report", after=json.dumps([{"job": "load", "on": "success"}]), after_mode="any")
    response = staff.post("/admin/jobs/job/add/", fields)
    assert response.status_code == 302, response.content.decode()[:2000]
    assert Job.objects.get(pk="report").after == [{"job": "load", "on": "success"}]


def test_a_cycle_is_a_form_error_naming_it(staff):
    make("load")
    make("report", after=[{"job": "load", "on": "success"}])
    fields = form(id="load", after=json.dumps([{"job": "report", "on": "finish"}]), after_mode="any")
    response = staff.post("/admin/jobs/job/load/change/", fields)
    assert response.status_code == 200
    assert response.context["adminform"].form.errors["after"] == ["This makes a cycle: load → report → load."]


def test_the_job_page_shows_what_it_waits_for_what_it_fires_and_a_graph(staff):
    make("load")
    make("gone")
    make("report", after=[{"job": "load", "on": "success"}, {"job": "gone", "on": "finish"}])
    make("send", after=[{"job": "report", "on": "finish"}])
    services.job_delete(job=Job.objects.get(pk="gone"))
    services.job_pause(job=Job.objects.get(pk="load"))
    page = staff.get("/admin/jobs/job/report/change/").content.decode()
    assert "Runs after" in page
    text = html.unescape(page)
    assert "on success — paused" in " ".join(text.split()).replace("</strong>", "").replace("<strong>", "")
    assert "if a job of that id is made again" in text
    assert 'href="/admin/jobs/job/send/change/"' in page
    assert "<svg" in page
    assert "cdn" not in page.lower()
    assert page.count("<rect") == 4  # load, gone (dashed), report, send


def test_a_run_page_links_the_run_that_fired_it(staff):
    load = make("load")
    report = make("report", after=[{"job": "load", "on": "success"}])
    upstream = Run.objects.create(job=load, trigger="manual", status="success")
    fired = Run.objects.create(job=report, trigger="dependency", status="queued", upstream_run=upstream)
    page = staff.get(f"/admin/runs/run/{fired.pk}/change/").content.decode()
    assert f'href="/admin/runs/run/{upstream.pk}/change/">run {upstream.pk}</a> of load (success)' in page
    page = staff.get(f"/admin/runs/run/{upstream.pk}/change/").content.decode()
    assert f'href="/admin/runs/run/{fired.pk}/change/">run {fired.pk}</a> of report (queued)' in page
