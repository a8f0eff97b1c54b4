"""A going run's page follows its log and output live (runs/static/runs/live_log.js); an ended
run's page is plain text."""

from __future__ import annotations

import re

import pytest

from jobs import services
from runs.models import Run

pytestmark = pytest.mark.django_db


@pytest.fixture
def job():
    return services.job_create(data={"id": "j", "interval_seconds": 60, "url": "http://127.0.0.1:9/"})


def test_a_running_runs_page_follows_its_log_and_output(staff, job):
    run = Run.objects.create(job=job, trigger="manual", status="running", log_output="héllo <b>")
    page = staff.get(f"/admin/runs/run/{run.pk}/change/").content.decode()
    assert '<script src="/static/runs/live_log.js"></script>' in page
    blocks = re.findall(r"<pre [^>]*data-ct-live=[^>]*>[^<]*</pre>", page)
    assert len(blocks) == 2
    log, output = blocks
    assert 'data-ct-live="log_output"' in log
    assert 'data-ct-offset="9"' in log  # characters of the stored text, as the API counts them
    assert f'data-ct-url="/api/runs/{run.pk}/log/"' in log
    assert "héllo &lt;b&gt;</pre>" in log
    assert 'data-ct-live="output"' in output
    assert 'data-ct-offset="0"' in output
    assert "data-ct-empty" in output
    assert "—</pre>" in output


@pytest.mark.parametrize("status", ["success", "failed", "lost"])
def test_an_ended_runs_page_is_plain_text(staff, job, status):
    run = Run.objects.create(job=job, trigger="manual", status=status, output="done\n")
    page = staff.get(f"/admin/runs/run/{run.pk}/change/").content.decode()
    assert "data-ct-live" not in page
    assert "done\n</pre>" in page
