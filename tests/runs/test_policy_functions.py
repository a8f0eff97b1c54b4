"""The decisions of ``runs.policies``, as the pure functions they are: no database, no clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from runs import policies

NOW = datetime(2026, 3, 2, 10, 1, 0, 400_000, tzinfo=UTC)


def seconds(n: float) -> timedelta:
    return timedelta(seconds=n)


# ---------------------------------------------------------------- claiming


def test_a_delivery_without_a_fire_time_stands_for_a_fire_at_the_current_second():
    assert policies.fire_time(None, now=NOW) == NOW.replace(microsecond=0)
    at = NOW - seconds(30)
    assert policies.fire_time(at, now=NOW) == at


@pytest.mark.parametrize(
    ("late", "grace", "skipped"),
    [(0, 10, False), (10, 10, False), (10.5, 10, True), (3600, None, False), (-1, 0, False), (0.1, 0, True)],
)
def test_a_fire_later_than_its_grace_is_a_misfire(late, grace, skipped):
    reason = policies.misfire_reason(NOW - seconds(late), now=NOW, grace_seconds=grace)
    assert bool(reason) is skipped
    if skipped:
        assert reason == f"Misfire: started {late:.1f} s after its scheduled time; the grace is {grace} s."


def test_only_a_paused_job_skips_its_fire():
    assert policies.paused_reason("paused") == "The job was paused before this fire started."
    assert policies.paused_reason("active") == ""
    assert policies.paused_reason("completed") == ""


def test_the_forbid_reason_names_the_run_still_going():
    assert policies.overlap_reason(42) == "Concurrency policy 'forbid': run 42 of this job was still running."


def test_a_claim_with_a_reason_is_skipped_at_once():
    fields = policies.claim_start("because", now=NOW, fire=NOW + seconds(1))
    assert fields == {"status": "skipped", "started_at": NOW, "finished_at": NOW, "duration_ms": 0, "error": "because"}


def test_a_claim_before_its_fires_time_stays_queued_and_one_at_or_after_it_runs():
    assert policies.claim_start("", now=NOW, fire=NOW + seconds(0.2)) == {"status": "queued"}
    assert policies.claim_start("", now=NOW, fire=NOW) == {"status": "running", "started_at": NOW}
    assert policies.claim_start("", now=NOW, fire=NOW - seconds(5)) == {"status": "running", "started_at": NOW}
    assert policies.claim_start("", now=NOW) == {"status": "running", "started_at": NOW}  # a manual run, a retry


# ---------------------------------------------------------------- holding a fire sent ahead


@pytest.mark.parametrize(
    ("ahead", "lead_ms", "held"),
    [(0.2, 250, 0.2), (0, 250, 0.0), (-3, 250, 0.0), (3600, 250, 1.25), (5, 0, 1.0), (1.5, 1000, 1.5)],
)
def test_a_fire_sent_ahead_is_held_until_its_time_and_never_longer_than_the_lead_and_a_second(ahead, lead_ms, held):
    assert policies.hold_seconds(NOW + seconds(ahead), now=NOW, lead_ms=lead_ms) == pytest.approx(held)


def test_a_run_without_a_fire_time_is_not_held():
    assert policies.hold_seconds(None, now=NOW, lead_ms=250) == 0.0


# ---------------------------------------------------------------- deadlines


def test_a_run_is_lost_only_once_its_timeout_and_the_grace_have_passed():
    started = NOW - seconds(100)
    deadline = policies.lost_deadline(started, timeout_seconds=60, grace_seconds=30)
    assert deadline == started + seconds(90)
    assert policies.is_lost(started, now=deadline, timeout_seconds=60, grace_seconds=30) is False
    assert policies.is_lost(started, now=deadline + seconds(0.001), timeout_seconds=60, grace_seconds=30) is True
    assert policies.is_lost(started, now=NOW, timeout_seconds=60, grace_seconds=40) is False


def test_a_queued_run_expires_its_expiry_before_now():
    assert policies.queued_expired_before(now=NOW, expiry_seconds=3600) == NOW - seconds(3600)


def test_an_outcome_may_be_stored_until_a_few_seconds_before_the_reapers_deadline():
    started = NOW - seconds(10)
    # 60 s of timeout and 30 s of grace from 10 s ago: 80 s left, less the 5 s kept in hand.
    assert policies.store_window(started, now=NOW, timeout_seconds=60, grace_seconds=30) == pytest.approx(75)
    assert policies.store_window(None, now=NOW, timeout_seconds=60, grace_seconds=30) == pytest.approx(85)
    assert policies.store_window(NOW - seconds(1000), now=NOW, timeout_seconds=60, grace_seconds=30) == 0.0
    assert policies.store_window(NOW - seconds(86), now=NOW, timeout_seconds=60, grace_seconds=30) == 0.0


# ---------------------------------------------------------------- retries


@pytest.mark.parametrize("status", ["failed", "timeout", "lost"])
def test_a_run_that_failed_timed_out_or_was_lost_is_retried_while_attempts_are_left(status):
    assert policies.should_retry(status=status, attempt=1, max_retries=1) is True
    assert policies.should_retry(status=status, attempt=3, max_retries=3) is True
    assert policies.should_retry(status=status, attempt=2, max_retries=1) is False
    assert policies.should_retry(status=status, attempt=1, max_retries=0) is False


@pytest.mark.parametrize("status", ["success", "skipped", "running", "queued"])
def test_a_run_that_did_not_fail_is_not_retried(status):
    assert policies.should_retry(status=status, attempt=1, max_retries=5) is False


def test_retries_back_off_exponentially():
    assert [policies.retry_delay(attempt=n, backoff_seconds=5) for n in (1, 2, 3, 4)] == [5, 10, 20, 40]
    assert policies.retry_delay(attempt=1, backoff_seconds=0) == 0


def test_the_policies_read_no_clock(monkeypatch):
    """Everything time-dependent comes in as ``now``: the same inputs give the same decision."""
    import django.utils.timezone

    def no_clock():
        raise AssertionError("a policy read the clock")

    monkeypatch.setattr(django.utils.timezone, "now", no_clock)
    assert policies.hold_seconds(NOW + seconds(1), now=NOW, lead_ms=250) == 1.0
    assert policies.store_window(None, now=NOW, timeout_seconds=1, grace_seconds=1) == 0.0
    assert policies.claim_start("", now=NOW)["started_at"] == NOW
    assert policies.fire_time(None, now=NOW) == NOW.replace(microsecond=0)
