"""``?search=`` is bounded: at most 10 terms of at most 100 characters, else a 400 naming it."""

from __future__ import annotations

import pytest

from core.search import MAX_TERM_LENGTH, MAX_TERMS
from jobs import services

pytestmark = pytest.mark.django_db

PATHS = ["/api/jobs/", "/api/runs/", "/api/jobs/ping/runs/"]


@pytest.fixture
def job():
    return services.job_create(data={"id": "ping", "url": "http://127.0.0.1:9/", "interval_seconds": 60})


@pytest.mark.parametrize("path", PATHS)
def test_a_thousand_terms_are_a_400_naming_search_and_the_limit(api, job, path):
    response = api.get(path, {"search": " ".join(f"t{i}" for i in range(1000))})
    assert response.status_code == 400, response.content[:300]
    (message,) = response.json()["search"]
    assert f"At most {MAX_TERMS} search terms" in message


@pytest.mark.parametrize("path", PATHS)
def test_a_term_too_long_is_a_400(api, job, path):
    response = api.get(path, {"search": "x" * (MAX_TERM_LENGTH + 1)})
    assert response.status_code == 400
    assert f"at most {MAX_TERM_LENGTH} characters" in response.json()["search"][0]


def test_terms_split_by_commas_count_too(api, job):
    assert api.get("/api/jobs/", {"search": ",".join("abcdefghijk")}).status_code == 400


def test_a_search_within_the_bounds_still_searches(api, job):
    services.job_create(data={"id": "other", "url": "http://127.0.0.1:9/x", "interval_seconds": 60})
    terms = ["ping", *(["127.0.0.1"] * (MAX_TERMS - 1))]
    response = api.get("/api/jobs/", {"search": " ".join(terms)})
    assert response.status_code == 200
    assert [row["id"] for row in response.json()["results"]] == ["ping"]
    assert api.get("/api/jobs/", {"search": "p" * MAX_TERM_LENGTH}).status_code == 200
