"""A path parameter no database can hold (a NUL character: PostgreSQL refuses it in any text) is
a 404 on every per-job and per-run path, never a 500; a NUL in the query string is a 400."""

from __future__ import annotations

import pytest
from django.test import Client

from jobs import services

pytestmark = pytest.mark.django_db

BAD_IDS = ["%00", "a%00b", "%00%00"]
PATHS = [
    ("get", "/api/jobs/{}/"),
    ("put", "/api/jobs/{}/"),
    ("patch", "/api/jobs/{}/"),
    ("delete", "/api/jobs/{}/"),
    ("post", "/api/jobs/{}/pause/"),
    ("post", "/api/jobs/{}/resume/"),
    ("post", "/api/jobs/{}/run/"),
    ("post", "/api/jobs/{}/clone/"),
    ("get", "/api/jobs/{}/runs/"),
    ("get", "/api/runs/{}/"),
    ("post", "/api/runs/{}/rerun/"),
    ("get", "/api/runs/{}/log/"),
    ("get", "/jobs/{}"),
    ("delete", "/jobs/{}"),
    ("get", "/jobs/{}/runs"),
    ("get", "/admin/jobs/job/{}/change/"),
    ("post", "/admin/jobs/job/{}/change/"),
    ("get", "/admin/jobs/job/{}/delete/"),
    ("post", "/admin/jobs/job/{}/delete/"),
    ("get", "/admin/jobs/job/{}/history/"),
    ("post", "/admin/jobs/job/{}/run-now/"),
    ("post", "/admin/jobs/job/{}/pause/"),
    ("post", "/admin/jobs/job/{}/resume/"),
    ("get", "/admin/runs/run/{}/change/"),
    ("get", "/admin/runs/run/{}/history/"),
    ("post", "/admin/runs/run/{}/run-again/"),
]


@pytest.fixture
def client(admin_user) -> Client:
    client = Client()
    client.force_login(admin_user)
    services.job_create(data={"id": "real", "interval_seconds": 60, "url": "http://127.0.0.1:9/"})
    return client


@pytest.mark.parametrize(("method", "path"), PATHS)
@pytest.mark.parametrize("bad", BAD_IDS)
def test_an_id_with_a_nul_character_is_not_found(client, method, path, bad):
    response = getattr(client, method)(path.format(bad), content_type="application/json")
    assert response.status_code == 404, response.content[:300]


@pytest.mark.parametrize(
    "path",
    ["/api/jobs/?search=%00", "/api/jobs/?status=a%00", "/api/runs/?job=%00", "/admin/jobs/job/?q=%00",
     "/admin/runs/run/?job=%00", "/jobs/real/runs?limit=%00"],
)  # fmt: skip
def test_a_nul_character_in_the_query_string_is_a_bad_request(client, path):
    response = client.get(path)
    assert response.status_code == 400, response.content[:300]
    assert b"NUL" in response.content
