"""A request that meets a database that is away gets 503 with the reason and a Retry-After (the
request is fine and will work shortly), on the API and in the admin alike, never a 500."""

from __future__ import annotations

import pytest
from django.db import InterfaceError, OperationalError
from django.test import Client

from jobs.api import JobViewSet

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "error",
    [OperationalError("server closed the connection unexpectedly"), InterfaceError("connection already closed")],
)
def test_a_database_that_is_away_is_a_503_with_a_retry_after(api, monkeypatch, error):
    def unavailable(*args, **kwargs):
        raise error

    monkeypatch.setattr(JobViewSet, "list", unavailable)
    response = api.get("/api/jobs/")
    assert response.status_code == 503
    assert response.json() == {"detail": "The database is unavailable; try again shortly."}
    assert response["Retry-After"] == "5"


def test_the_admin_says_so_too(admin_user, monkeypatch):
    from jobs.admin import JobAdmin

    def unavailable(*args, **kwargs):
        raise OperationalError("could not connect to server: Connection refused")

    monkeypatch.setattr(JobAdmin, "get_queryset", unavailable)
    client = Client()
    client.force_login(admin_user)
    response = client.get("/admin/jobs/job/")
    assert (response.status_code, response.content) == (503, b"The database is unavailable; try again shortly.")


def test_other_errors_are_still_errors(api, monkeypatch):
    def broken(*args, **kwargs):
        raise ValueError("a bug")

    monkeypatch.setattr(JobViewSet, "list", broken)
    with pytest.raises(ValueError, match="a bug"):
        api.get("/api/jobs/")
