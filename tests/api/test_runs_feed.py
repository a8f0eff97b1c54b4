"""The runs lists (/api/runs/, /api/jobs/{id}/runs/) at any size: a keyset cursor (?cursor=) whose
pages cost the same however deep, and limit/offset as before with a count capped to stay cheap."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from core.pagination import FeedPagination
from jobs import services
from runs.models import Run

pytestmark = pytest.mark.django_db

URL = "http://127.0.0.1:9/"


@pytest.fixture
def runs(db) -> list[int]:
    job = services.job_create(data={"id": "web", "url": URL, "interval_seconds": 60})
    other = services.job_create(data={"id": "other", "url": URL, "interval_seconds": 60})
    made = Run.objects.bulk_create(
        [Run(job=job if n % 3 else other, trigger="manual", status="success" if n % 2 else "failed") for n in range(25)]
    )
    return sorted((run.pk for run in made), reverse=True)


def ids(page: dict) -> list[int]:
    return [run["id"] for run in page["results"]]


def walk(api, url: str, key: str = "next") -> list[list[int]]:
    pages = []
    while url:
        page = api.get(url).json()
        pages.append(ids(page))
        url = page[key]
    return pages


def test_the_cursor_walks_every_run_newest_first_and_back(api, runs):
    first = api.get("/api/runs/?cursor=&limit=10").json()
    assert set(first) == {"next", "previous", "results"}
    assert first["previous"] is None
    pages = walk(api, "/api/runs/?cursor=&limit=10")
    assert pages == [runs[:10], runs[10:20], runs[20:]]
    last = api.get(api.get(first["next"]).json()["next"]).json()
    assert last["next"] is None
    assert walk(api, last["previous"], key="previous") == [runs[10:20], runs[:10]]


def test_the_cursor_keeps_the_filters_and_the_oldest_first_order(api, runs):
    web_failed = [
        pk for pk in runs if Run.objects.get(pk=pk).job_id == "web" and Run.objects.get(pk=pk).status == "failed"
    ]
    pages = walk(api, "/api/runs/?cursor=&limit=3&job=web&status=failed")
    assert [pk for page in pages for pk in page] == web_failed
    oldest = walk(api, "/api/jobs/web/runs/?cursor=&limit=4&ordering=id")
    assert [pk for page in oldest for pk in page] == sorted(pk for pk in runs if Run.objects.get(pk=pk).job_id == "web")


def test_a_bad_cursor_or_an_order_it_cannot_page_is_a_400(api, runs):
    for given in ("nope", "YXh4", "%%", "b" * 40):
        response = api.get(f"/api/runs/?cursor={given}")
        assert response.status_code == 400, given
        assert "cursor" in response.json()
    assert "cursor" in api.get("/api/runs/?cursor=&ordering=-started_at").json()


def test_a_page_deep_in_the_feed_reads_by_id_not_by_offset(api, runs):
    second = api.get("/api/runs/?cursor=&limit=10").json()["next"]
    with CaptureQueriesContext(connection) as queries:
        assert api.get(second).status_code == 200
    run_queries = [q["sql"] for q in queries if '"runs_run"' in q["sql"]]
    assert len(run_queries) == 1  # no count
    assert "OFFSET" not in run_queries[0]
    assert '"runs_run"."id" <' in run_queries[0]


def test_limit_and_offset_still_page_and_count_up_to_the_cap(api, runs, monkeypatch):
    page = api.get("/api/runs/?limit=10&offset=10").json()
    assert (page["count"], page["count_capped"], ids(page)) == (25, False, runs[10:20])
    assert page["next"]
    assert page["previous"]
    monkeypatch.setattr(FeedPagination, "COUNT_CAP", 20)
    capped = api.get("/api/runs/?limit=10&offset=10").json()
    assert (capped["count"], capped["count_capped"]) == (20, True)
    beyond = api.get(capped["next"]).json()  # the rows past the cap are still reached
    assert ids(beyond) == runs[20:]
    assert beyond["next"] is None


@pytest.mark.parametrize(
    "url", ["/api/runs/?limit=10", "/api/runs/?cursor=&limit=10", "/api/jobs/web/runs/?cursor=&limit=10"]
)
def test_the_lists_read_no_captured_text(api, runs, url):
    """A list shows no captured text: it is not read either (up to megabytes a run, out of line)."""
    with CaptureQueriesContext(connection) as ctx:
        page = api.get(url).json()
    assert page["results"]
    reads = [q["sql"] for q in ctx.captured_queries if 'FROM "runs_run"' in q["sql"]]
    assert reads
    for column in ("response_body", "output", "log_output", "traceback", "result", "overrides"):
        assert not [sql for sql in reads if f'"runs_run"."{column}"' in sql], column
    detail = api.get(f"/api/runs/{runs[0]}/").json()
    assert "output" in detail  # the detail view still has it
