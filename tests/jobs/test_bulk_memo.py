"""What a bulk call memoizes (``jobs.memo``) is its own: every entry still reports its own errors,
nothing is kept from one call to the next, and messages are kept per language."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.core.exceptions import ValidationError
from django.test import override_settings
from django.utils import translation

from jobs import bulk
from jobs.memo import bulk_memo, memoized
from jobs.models import Job
from jobs.preparation import _clean_fields
from jobs.triggers import cron_fires_after

pytestmark = pytest.mark.django_db

URL = "http://127.0.0.1:9/"


def test_the_same_invalid_cron_twice_is_reported_on_both_entries():
    results = bulk.jobs_create_many(
        [
            {"id": "a", "url": URL, "cron": "61 * * * *"},
            {"id": "b", "url": URL, "cron": "61 * * * *"},
            {"id": "c", "url": URL, "cron": "1 * * * *", "timezone": "Nowhere/Else"},
            {"id": "d", "url": URL, "cron": "1 * * * *", "timezone": "Nowhere/Else"},
        ]
    )
    assert [r.ok for r in results] == [False] * 4
    assert results[0].errors == results[1].errors
    assert list(results[0].errors) == ["cron"]
    assert results[2].errors == results[3].errors
    assert list(results[2].errors) == ["timezone"]


def test_an_egress_denied_host_is_reported_on_every_entry_with_it():
    metadata = "http://169.254.169.254/latest"
    results = bulk.jobs_create_many(
        [{"id": f"m{i}", "url": metadata, "interval_seconds": 60} for i in range(3)]
        + [{"id": "ok", "url": URL, "interval_seconds": 60}]
    )
    assert [r.ok for r in results] == [False, False, False, True]
    for result in results[:3]:
        assert list(result.errors) == ["url"]
        assert "cloud metadata address" in result.errors["url"][0]


def test_a_shared_field_value_refused_is_refused_on_every_entry():
    results = bulk.jobs_create_many(
        [{"id": f"t{i}", "url": URL, "interval_seconds": 60, "timeout_seconds": 0, "method": "BREW"} for i in range(2)]
    )
    assert [r.ok for r in results] == [False, False]
    assert results[0].errors == results[1].errors
    assert {"timeout_seconds", "method"} <= results[0].errors.keys()


def test_nothing_is_kept_from_one_call_to_the_next():
    entry = {"url": "http://10.1.2.3/", "interval_seconds": 60}
    assert bulk.jobs_create_many([{**entry, "id": "first"}])[0].ok
    with override_settings(CRONTASK_EGRESS_DENY=["10.0.0.0/8"]):
        denied = bulk.jobs_create_many([{**entry, "id": "second"}])[0]
    assert list(denied.errors) == ["url"]
    assert "10.0.0.0/8" in denied.errors["url"][0]


def test_messages_are_in_the_language_of_each_call():
    entry = {"id": "x", "url": URL, "cron": "61 * * * *"}
    with translation.override("en"):
        english = bulk.jobs_create_many([entry])[0].errors["cron"]
    with translation.override("zh-hans"):
        chinese = bulk.jobs_create_many([entry])[0].errors["cron"]
    assert english != chinese


def test_within_a_call_a_kept_message_is_kept_per_language():
    calls = []

    def message() -> str:
        calls.append(translation.get_language())
        return translation.gettext("Unknown field.")

    with bulk_memo():
        with translation.override("en"):
            english = memoized("t", "k", message, translated=bool)
            assert memoized("t", "k", message, translated=bool) == english
        with translation.override("zh-hans"):
            chinese = memoized("t", "k", message, translated=bool)
    assert english != chinese
    assert calls == ["en", "zh-hans"]


def test_outside_a_bulk_call_nothing_is_memoized():
    calls = []
    for _ in range(2):
        memoized("t", "k", lambda: calls.append(1))
    assert len(calls) == 2
    with bulk_memo():
        for _ in range(2):
            memoized("t", "k", lambda: calls.append(1))
    assert len(calls) == 3


@pytest.mark.parametrize(
    ("expr", "zone"),
    [("30 2 * * *", "Europe/Berlin"), ("*/7 * * * *", "America/New_York"), ("0 1 * * *", "Europe/London")],
)
def test_the_first_fire_within_a_call_is_the_first_fire(expr, zone):
    """Across the DST changes, minute by minute: what the memo answers is what a parse finds."""
    tz = ZoneInfo(zone)
    afters = []
    for start in (datetime(2026, 3, 28, tzinfo=UTC), datetime(2026, 10, 24, tzinfo=UTC)):
        afters += [start + timedelta(minutes=13 * n, seconds=n % 7, microseconds=n) for n in range(400)]
    expected = [cron_fires_after(expr, tz, after) for after in afters]
    with bulk_memo():
        assert [cron_fires_after(expr, tz, after) for after in afters] == expected


def test_the_fields_are_cleaned_as_clean_fields_cleans_them():
    def job(**values: Any) -> Job:
        return Job(**{"id": "j", "name": "j", "url": URL, "trigger": "interval", "interval_seconds": 60, **values})

    cases: list[dict[str, Any]] = [
        {},
        {"timeout_seconds": 0},
        {"timeout_seconds": "10"},
        {"method": "BREW", "max_retries": -1},
        {"follow_redirects": "maybe"},
        {"interval_seconds": "abc"},
        {"kind": "nope"},
        {"timezone": "x" * 300},
    ]
    with bulk_memo():
        for _ in range(2):  # the second time from the memo
            for values in cases:
                django_job, ours = job(**values), job(**values)
                try:
                    django_job.clean_fields()
                    expected: dict = {}
                except ValidationError as exc:
                    expected = exc.message_dict
                errors = _clean_fields(ours)
                assert (ValidationError(errors).message_dict if errors else {}) == expected
                assert {f.attname: getattr(ours, f.attname) for f in Job._meta.fields} == {
                    f.attname: getattr(django_job, f.attname) for f in Job._meta.fields
                }
