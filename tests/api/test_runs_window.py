"""A closed started_at window on the runs lists (started_after and started_before): listed within
the id range of its runs (``runs.selectors.started_window_ids``) so a narrow window far back is not
a walk from the newest run. The lists must be exactly those without the range, in the same order,
however a run's id and started_at disagree."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from jobs import services
from runs import selectors
from runs.models import Run

pytestmark = pytest.mark.django_db

URL = "http://127.0.0.1:9/"
T0 = datetime(2026, 3, 1, tzinfo=UTC)
AFTER, BEFORE = T0 + timedelta(hours=10), T0 + timedelta(hours=20)
WINDOW = f"started_after={AFTER.isoformat()}&started_before={BEFORE.isoformat()}".replace("+", "%2B")
# started_at an hour apart, in an order that is not the ids' (a run queued early can start late):
# the window's lowest and highest ids are not its first and last to start, runs outside it sit
# between its ids, and one ends exactly at each edge (after: in; before: out).
HOURS = [3, 12, 25, 19, 10, 20, 14, None, 9, 17, 30, 11, 15, 0, 18, 13, None, 22, 16, 12, 21, 19.5, 10, 5]


@pytest.fixture
def runs(db) -> dict[int, datetime | None]:
    web = services.job_create(data={"id": "web", "url": URL, "interval_seconds": 60})
    other = services.job_create(data={"id": "other", "url": URL, "interval_seconds": 60})
    made = Run.objects.bulk_create(
        [
            Run(
                job=web if n % 3 else other,
                trigger="manual",
                status="failed" if n % 4 == 0 else "success",
                started_at=None if hours is None else T0 + timedelta(hours=hours),
            )
            for n, hours in enumerate(HOURS)
        ]
    )
    return {run.pk: run.started_at for run in made}


@pytest.fixture(params=["bounded", "as before"])
def path(request, monkeypatch) -> str:
    """Both ways of listing a window: bounded by its ids (no run needs to have started past it,
    as in a large table) and as any filter (the selector declines)."""
    if request.param == "bounded":
        monkeypatch.setattr(selectors, "NEAR_END_RUNS", 0)
    else:
        monkeypatch.setattr(selectors, "started_window_ids", lambda **kwargs: None)
    return request.param


def in_window(runs: dict[int, datetime | None], keep=lambda pk: True) -> list[int]:
    return sorted((pk for pk, at in runs.items() if at is not None and AFTER <= at < BEFORE and keep(pk)), reverse=True)


def ids(page: dict) -> list[int]:
    return [run["id"] for run in page["results"]]


def walk(api, url: str, key: str = "next") -> list[int]:
    found = []
    while url:
        page = api.get(url).json()
        found.extend(ids(page))
        url = page[key]
    return found


def test_the_window_ids_are_not_in_started_at_order(runs):
    window = in_window(runs)
    first_to_start = min(window, key=lambda pk: runs[pk])
    last_to_start = max(window, key=lambda pk: runs[pk])
    assert (first_to_start, last_to_start) != (min(window), max(window))
    outside_between = [pk for pk in runs if min(window) < pk < max(window) and pk not in window]
    assert outside_between  # the id range holds runs the window does not
    assert selectors.started_window_ids(after=AFTER, before=BEFORE) is None  # few runs: not needed


def test_the_bounds_are_the_window_runs_lowest_and_highest_ids(runs, monkeypatch):
    window = in_window(runs)
    assert selectors.started_window_ids(after=AFTER, before=BEFORE, cap=len(window)) is None  # NEAR_END_RUNS
    monkeypatch.setattr(selectors, "NEAR_END_RUNS", 0)
    bounds = selectors.started_window_ids(after=AFTER, before=BEFORE, cap=len(window))
    assert bounds == selectors.IdRange(lowest=min(window), highest=max(window))
    oldest_first = selectors.started_window_ids(after=AFTER, before=BEFORE, newest_first=False, cap=len(window))
    assert oldest_first == bounds
    assert selectors.started_window_ids(after=AFTER, before=BEFORE, cap=len(window) - 1) is None  # wide
    empty = selectors.started_window_ids(after=T0 + timedelta(hours=40), before=T0 + timedelta(hours=41))
    assert empty == selectors.IdRange(lowest=None, highest=None)


@pytest.mark.parametrize("limit", [1, 2, 5, 50])
def test_limit_and_offset_pages_of_a_window_are_those_of_before(api, runs, path, limit):
    window = in_window(runs)
    page = api.get(f"/api/runs/?limit={limit}&{WINDOW}").json()
    assert page["count"] == len(window)
    assert ids(page) == window[:limit]
    assert walk(api, f"/api/runs/?limit={limit}&{WINDOW}") == window
    assert ids(api.get(f"/api/runs/?limit={limit}&offset=3&{WINDOW}").json()) == window[3 : 3 + limit]
    oldest = api.get(f"/api/runs/?limit=50&ordering=id&{WINDOW}").json()
    assert ids(oldest) == window[::-1]


@pytest.mark.parametrize("limit", [1, 3, 50])
def test_cursor_pages_of_a_window_are_those_of_before(api, runs, path, limit):
    window = in_window(runs)
    assert walk(api, f"/api/runs/?cursor=&limit={limit}&{WINDOW}") == window
    assert walk(api, f"/api/runs/?cursor=&limit={limit}&ordering=id&{WINDOW}") == window[::-1]
    pages = [window[i : i + limit] for i in range(0, len(window), limit)]
    url = f"/api/runs/?cursor=&limit={limit}&{WINDOW}"
    while (page := api.get(url).json())["next"]:
        url = page["next"]
    assert ids(page) == pages[-1]
    back = walk(api, page["previous"], key="previous") if page["previous"] else []
    assert back == [pk for earlier in reversed(pages[:-1]) for pk in earlier]


def test_the_other_filters_and_a_jobs_runs_within_a_window_are_those_of_before(api, runs, path):
    web = set(Run.objects.filter(job_id="web").values_list("id", flat=True))
    failed = set(Run.objects.filter(status="failed").values_list("id", flat=True))
    assert walk(api, f"/api/runs/?cursor=&limit=2&status=failed&{WINDOW}") == in_window(runs, failed.__contains__)
    assert walk(api, f"/api/runs/?limit=2&job=web&{WINDOW}") == in_window(runs, web.__contains__)
    assert walk(api, f"/api/jobs/web/runs/?cursor=&limit=2&{WINDOW}") == in_window(runs, web.__contains__)
    assert (
        walk(api, f"/api/jobs/other/runs/?limit=2&ordering=id&{WINDOW}")
        == in_window(runs, lambda pk: pk not in web)[::-1]
    )
    by_start = api.get(f"/api/runs/?limit=50&ordering=-started_at&{WINDOW}").json()
    assert ids(by_start) == sorted(in_window(runs), key=lambda pk: runs[pk], reverse=True)


def test_an_empty_window_or_one_backwards_lists_nothing(api, runs, path):
    later, later_still = (T0 + timedelta(hours=40)).isoformat(), (T0 + timedelta(hours=41)).isoformat()
    late = f"started_after={later}&started_before={later_still}"
    backwards = f"started_after={BEFORE.isoformat()}&started_before={AFTER.isoformat()}"
    for window in (late, backwards):
        window = window.replace("+", "%2B")
        assert api.get(f"/api/runs/?{window}").json()["count"] == 0
        assert api.get(f"/api/runs/?cursor=&{window}").json() == {"next": None, "previous": None, "results": []}


def test_a_narrow_window_is_listed_within_its_id_range(api, runs, monkeypatch):
    monkeypatch.setattr(selectors, "NEAR_END_RUNS", 0)
    window = in_window(runs)
    with CaptureQueriesContext(connection) as queries:
        assert ids(api.get(f"/api/runs/?cursor=&limit=50&{WINDOW}").json()) == window
    page = [q["sql"] for q in queries if '"runs_run"."started_at"' in q["sql"] and "LIMIT 51" in q["sql"]]
    assert len(page) == 1
    assert f'"runs_run"."id" >= {min(window)}' in page[0]
    assert f'"runs_run"."id" <= {max(window)}' in page[0]
    assert any("MIN(" in q["sql"] for q in queries)  # the bounds, read from the window's runs


def test_a_window_listed_in_another_order_or_open_reads_no_id_range(api, runs, monkeypatch):
    monkeypatch.setattr(selectors, "NEAR_END_RUNS", 0)
    for query in (f"ordering=-started_at&{WINDOW}", f"started_after={AFTER.isoformat()}".replace("+", "%2B")):
        with CaptureQueriesContext(connection) as queries:
            assert api.get(f"/api/runs/?{query}").status_code == 200
        assert not any("MIN(" in q["sql"] for q in queries), query


@pytest.mark.skipif(connection.vendor != "postgresql", reason="SQLite has no index with included columns")
def test_a_jobs_runs_in_a_window_are_counted_from_the_index_alone(api, runs, monkeypatch):
    """A busy job's day far back, listed with limit/offset, is counted from run_job_recent_at_idx
    (job, -id) INCLUDE (started_at): the window's started_at is in the index, so no run's row is
    read (4,320 rows for a run every 20 s; 20 ms and more at 10,000,000 runs)."""
    monkeypatch.setattr(selectors, "NEAR_END_RUNS", 0)
    with CaptureQueriesContext(connection) as queries:
        page = api.get(f"/api/jobs/web/runs/?limit=2&{WINDOW}").json()
    assert page["count"] == len(in_window(runs, keep=lambda pk: Run.objects.get(pk=pk).job_id == "web"))
    (count,) = [q["sql"] for q in queries if q["sql"].startswith("SELECT COUNT(*)") and '"job_id" = ' in q["sql"]]
    with connection.cursor() as cursor:
        # Only an index-only scan is allowed: without started_at in the index none is possible, and
        # the plan falls back to a disabled kind.
        for kind in ("seqscan", "bitmapscan", "indexscan"):
            cursor.execute(f"SET LOCAL enable_{kind} = off")
        cursor.execute(f"EXPLAIN {count}")
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "Index Only Scan using run_job_recent_at_idx" in plan, plan


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's planner")
def test_the_windows_bounds_are_estimated_each_on_its_own(api, runs, monkeypatch):
    """The page of a window with a status is estimated at about a ninth of the id range's runs (a
    third for each bound), not one in two hundred (one narrow range): with that estimate a page of
    a status far back was read whole, by parallel workers (7 to 12 ms, against 0.3 ms)."""
    monkeypatch.setattr(selectors, "NEAR_END_RUNS", 0)
    job = Run.objects.first().job  # type: ignore[union-attr]  # the fixture's runs
    Run.objects.bulk_create(  # enough runs, in the window, for estimates above PostgreSQL's floor of one row
        Run(job=job, trigger="manual", status="failed" if n % 4 == 0 else "success", started_at=AFTER)
        for n in range(2000)
    )
    with connection.cursor() as cursor:
        # Its statistics are rolled back with the test; the table's row count in pg_class is not,
        # which no other test's plan depends on (those force theirs with enable_*).
        cursor.execute("ANALYZE runs_run")
    with CaptureQueriesContext(connection) as queries:
        assert api.get(f"/api/runs/?cursor=&limit=50&status=failed&{WINDOW}").status_code == 200
    (page,) = [q["sql"] for q in queries if "LIMIT 51" in q["sql"]]
    assert """("runs_run"."started_at" + '0:00:00'::interval) >=""" in page, page
    assert """("runs_run"."started_at" - '0:00:00'::interval) <""" in page, page
    bounded = page[: page.index(' AND ("runs_run"."started_at"')] + page[page.index(") ORDER BY") :]  # no window
    with connection.cursor() as cursor:
        estimates = []
        for sql in (page, bounded):
            cursor.execute(f"EXPLAIN (FORMAT JSON) {sql.replace('LIMIT 51', '')}")
            estimates.append(cursor.fetchone()[0][0]["Plan"]["Plan Rows"])
    assert estimates[0] * 20 >= estimates[1], (estimates, page)  # one narrow range: a two-hundredth
