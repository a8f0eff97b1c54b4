"""A going run's page follows its log and output live (runs/static/runs/live_log.js); an ended
run's page is plain text."""

from __future__ import annotations

import re

import pytest

from jobs.models import Job
from runs.models import Run

pytestmark = pytest.mark.django_db


@pytest.fixture
def job():
    # A python job's page shows its log; a shell job's its output (a run's page shows its kind's).
    return Job.objects.create(id="j", kind="python", handler="scripts:chatty", trigger="manual")


@pytest.fixture
def shell_job():
    return Job.objects.create(id="s", kind="shell", command="echo done", trigger="manual")


def test_a_running_runs_page_follows_its_log_and_output(staff, job, shell_job):
    run = Run.objects.create(job=job, trigger="manual", status="running", log_output="héllo <b>")
    page = staff.get(f"/admin/runs/run/{run.pk}/change/").content.decode()
    assert '<script src="/static/runs/live_log.js"></script>' in page
    (log,) = re.findall(r"<pre [^>]*data-ct-live=[^>]*>[^<]*</pre>", page)
    shell_run = Run.objects.create(job=shell_job, trigger="manual", status="running")
    page = staff.get(f"/admin/runs/run/{shell_run.pk}/change/").content.decode()
    (output,) = re.findall(r"<pre [^>]*data-ct-live=[^>]*>[^<]*</pre>", page)
    assert 'data-ct-live="log_output"' in log
    assert 'data-ct-offset="9"' in log  # characters of the stored text, as the API counts them
    assert f'data-ct-url="/api/runs/{run.pk}/log/"' in log
    assert f'data-ct-url="/api/runs/{shell_run.pk}/log/"' in output
    assert "héllo &lt;b&gt;</pre>" in log
    assert 'data-ct-live="output"' in output
    assert 'data-ct-offset="0"' in output
    assert "data-ct-empty" in output
    assert "—</pre>" in output


@pytest.mark.parametrize("status", ["success", "failed", "lost"])
def test_an_ended_runs_page_is_plain_text(staff, shell_job, status):
    run = Run.objects.create(job=shell_job, trigger="manual", status=status, output="done\n")
    page = staff.get(f"/admin/runs/run/{run.pk}/change/").content.decode()
    assert "data-ct-live" not in page
    assert "done\n</pre>" in page
