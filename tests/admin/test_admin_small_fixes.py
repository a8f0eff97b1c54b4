"""The admin's small things: the site root and favicon, plurals, GET/POST, the handler's help and
list, the delete confirmation, run now's links, a run page's sections."""

from __future__ import annotations

import html
import re

import pytest

from jobs import services
from jobs.models import Job
from runs.models import Run

pytestmark = pytest.mark.django_db
URL = "http://127.0.0.1:9/"


def test_the_root_leads_to_the_admin_and_the_favicon_is_served(client):
    assert client.get("/")["Location"] == "/admin/"
    favicon = client.get("/favicon.ico")
    assert favicon.status_code == 301
    assert favicon["Location"].endswith("crontask/favicon.svg")


def test_no_view_site_link(staff):
    assert "View site" not in staff.get("/admin/").content.decode()


def test_methods_read_as_written(staff):
    page = staff.get("/admin/jobs/job/add/").content.decode()
    assert '<option value="GET" selected>GET</option>' in page
    assert ">Get<" not in page


def test_the_handler_box_offers_the_registry_and_keeps_name_in_its_help(staff):
    page = staff.get("/admin/jobs/job/add/").content.decode()
    assert 'list="ct-handlers"' in page
    assert re.search(r'<datalist id="ct-handlers">(<option value="scripts:[^"]+">[^<]*</option>)+</datalist>', page)
    assert "&#x27;scripts:&lt;name&gt;&#x27;" in page  # shown as <name>, not swallowed as a tag
    assert re.search(r'<option value="scripts:http_check">[^<]* — url: str', page)  # with its parameters


def test_delete_asks_first_naming_the_jobs_and_their_runs(staff):
    job = services.job_create(data={"id": "doomed", "interval_seconds": 60, "url": URL})
    Run.objects.bulk_create([Run(job=job, trigger="manual", status="success") for _ in range(3)])
    services.job_create(data={"id": "sys", "interval_seconds": 60, "url": URL}, is_system=True)
    page = html.unescape(
        staff.post(
            "/admin/jobs/job/", {"action": "delete_jobs", "_selected_action": ["doomed", "sys"]}
        ).content.decode()
    )
    assert 'id="ct-delete-confirmation"' in page
    assert "3 runs" in page
    assert "kept: system jobs cannot be deleted" in page
    assert "This deletes 1 job, with its runs" in page
    assert Job.objects.filter(pk="doomed").exists()  # nothing deleted yet
    done = staff.post(
        "/admin/jobs/job/", {"action": "delete_jobs", "_selected_action": ["doomed"], "post": "yes"}, follow=True
    )
    assert "1 job deleted." in done.content.decode()
    assert not Job.objects.filter(pk="doomed").exists()


def test_run_now_says_which_run_it_queued(staff, queued_tasks):
    services.job_create(data={"id": "now", "interval_seconds": 60, "url": URL})
    page = staff.post("/admin/jobs/job/now/run-now/", follow=True).content.decode()
    run = Run.objects.get(job_id="now")
    assert "1 job queued to run." in page
    assert f'<a href="/admin/runs/run/{run.pk}/change/" class="ct-run-link">run {run.pk}</a>' in page


def test_a_run_page_shows_only_its_kinds_section(staff):
    job = services.job_create(data={"id": "h", "interval_seconds": 60, "url": URL})
    run = Run.objects.create(job=job, trigger="manual", status="success", status_code=200)
    page = staff.get(f"/admin/runs/run/{run.pk}/change/").content.decode()
    headings = re.findall(r"<h2[^>]*>([^<]+)</h2>", page)
    assert "HTTP" in headings
    assert "Python" not in headings
    assert "Shell" not in headings
    assert "Failure" not in headings  # no traceback to show
