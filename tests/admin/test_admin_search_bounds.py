"""The admin's search box uses at most 10 terms of at most 100 characters and says what it left out."""

from __future__ import annotations

import pytest

from core.search import MAX_TERM_LENGTH, MAX_TERMS
from jobs import services
from runs.models import Run

pytestmark = pytest.mark.django_db


@pytest.fixture
def jobs():
    ping = services.job_create(data={"id": "ping", "url": "http://127.0.0.1:9/", "interval_seconds": 60})
    services.job_create(data={"id": "other", "url": "http://127.0.0.1:9/", "interval_seconds": 60})
    Run.objects.create(job=ping, trigger="manual", status="success")
    return ping


def listed(response) -> str:
    return response.content.decode()


@pytest.mark.parametrize("path", ["/admin/jobs/job/", "/admin/runs/run/"])
def test_a_thousand_term_search_answers_with_a_warning_instead_of_failing(staff, jobs, path):
    response = staff.get(path, {"q": "ping " + " ".join(f"t{i}" for i in range(1000))})
    assert response.status_code == 200
    messages = [str(m) for m in response.context["messages"]]
    assert any(f"at most {MAX_TERMS} terms" in m and "left out: 't9'" in m and "and 988 more" in m for m in messages)


def test_the_terms_within_the_bounds_are_searched_and_the_rest_only_widen_the_results(staff, jobs):
    # "ping" is kept and filters; the eleventh term, which matches nothing, is left out.
    response = staff.get("/admin/jobs/job/", {"q": " ".join(["ping", *["127.0.0.1"] * (MAX_TERMS - 1), "nothing"])})
    assert response.status_code == 200
    assert [job.pk for job in response.context["cl"].result_list] == ["ping"]
    response = staff.get("/admin/jobs/job/", {"q": "ping " + "x" * (MAX_TERM_LENGTH + 1)})
    assert [job.pk for job in response.context["cl"].result_list] == ["ping"]
    assert any("left out: 'xxxx" in str(m) for m in response.context["messages"])


def test_a_search_within_the_bounds_has_no_warning(staff, jobs):
    response = staff.get("/admin/jobs/job/", {"q": '"ping"'})
    assert [job.pk for job in response.context["cl"].result_list] == ["ping"]
    assert list(response.context["messages"]) == []
