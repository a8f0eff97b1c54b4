"""Notifications: recorded, queued after commit, delivered by the Celery task with retries, and a
broken channel's failure recorded, never raised. Messages: what they say about a job and its run."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from alerts import services
from alerts.delivery import backoff, notify
from alerts.messages import build_message
from alerts.models import Channel, Notification
from jobs import services as job_services
from runs.models import Run

pytestmark = pytest.mark.django_db


@pytest.fixture
def failed_run() -> Run:
    job = job_services.job_create(
        data={
            "id": "nightly",
            "name": "Nightly export",
            "cron": "0 2 * * *",
            "timezone": "Asia/Shanghai",
            "url": "http://127.0.0.1:9/export?token=job-token-98765",
        }
    )
    return Run.objects.create(
        job=job,
        trigger=Run.Trigger.SCHEDULED,
        status=Run.Status.FAILED,
        scheduled_for=datetime(2026, 3, 2, 18, 0, tzinfo=UTC),
        duration_ms=1234,
        error="HTTP 500 from http://127.0.0.1:9/export?token=job-token-98765",
    )


def slack(url: str, **fields: object) -> Channel:
    return services.channel_create(data={"name": "ops", "kind": "slack", "target": url, **fields})


def test_a_notification_is_queued_only_when_the_transaction_commits(
    receiver, eager, failed_run, django_capture_on_commit_callbacks
):
    channel = slack(receiver.url + "/slack")
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        notification = notify(channel, "failed", "it broke", job=failed_run.job, run=failed_run)
    assert receiver.hits["/slack"] == 0  # nothing sent inside the transaction
    assert Notification.objects.get().status == "pending"
    for callback in callbacks:
        callback()
    notification.refresh_from_db()
    assert (notification.status, notification.attempts, notification.error) == ("sent", 1, "")
    assert json.loads(receiver.requests[0][3]) == {"text": "it broke"}


def test_delivery_is_retried_until_the_receiver_takes_it(
    receiver, eager, failed_run, django_capture_on_commit_callbacks
):
    channel = slack(receiver.url + "/flaky/2")
    with django_capture_on_commit_callbacks(execute=True):
        notification = notify(channel, "failed", "it broke", job=failed_run.job, run=failed_run)
    notification.refresh_from_db()
    assert receiver.hits["/flaky/2"] == 3
    assert (notification.status, notification.attempts, notification.error) == ("sent", 3, "")
    assert notification.sent_at is not None


def test_a_broken_channel_fails_after_the_bounded_attempts_and_raises_nothing(
    settings, eager, django_capture_on_commit_callbacks
):
    settings.CRONTASK_ALERT_MAX_ATTEMPTS = 3
    channel = slack("http://127.0.0.1:9/hook")
    with django_capture_on_commit_callbacks(execute=True):
        notification = notify(channel, "failed", "it broke")
    notification.refresh_from_db()
    assert (notification.status, notification.attempts) == ("failed", 3)
    assert "ConnectionError" in notification.error


def test_a_disabled_channel_sends_nothing_and_says_so(receiver, eager, django_capture_on_commit_callbacks):
    channel = slack(receiver.url + "/slack", enabled=False)
    with django_capture_on_commit_callbacks(execute=True):
        notification = notify(channel, "failed", "it broke")
    notification.refresh_from_db()
    assert (notification.status, notification.error) == ("failed", "The channel is disabled.")
    assert receiver.hits["/slack"] == 0


def test_a_broker_that_cannot_take_the_message_leaves_the_record_and_raises_nothing(
    monkeypatch, django_capture_on_commit_callbacks
):
    from alerts import delivery

    def refuse(*args: object, **kwargs: object) -> None:
        raise ConnectionError("broker down")

    monkeypatch.setattr(delivery.deliver_task(), "apply_async", refuse)
    channel = slack("http://127.0.0.1:9/hook")
    with django_capture_on_commit_callbacks(execute=True):
        notify(channel, "failed", "it broke")
    assert Notification.objects.get().status == "pending"


def test_the_backoff_doubles_from_its_configurable_base(settings):
    settings.CRONTASK_ALERT_RETRY_BASE_SECONDS = 30
    assert [backoff(n) for n in range(4)] == [30, 60, 120, 240]


def test_the_message_names_the_job_the_run_and_links_to_it_with_the_error_masked(settings, failed_run):
    settings.CRONTASK_BASE_URL = "https://crontask.example.com/"
    text = build_message("failed", job=failed_run.job, run=failed_run)
    assert "Nightly export (nightly)" in text
    assert "Failed" in text
    assert f"Run {failed_run.pk}: failed" in text
    assert "Scheduled for: 2026-03-03T02:00:00+08:00 (Asia/Shanghai)" in text
    assert "Duration: 1234 ms" in text
    assert "Error: HTTP 500 from http://127.0.0.1:9/export?token=********" in text
    assert "job-token-98765" not in text
    assert f"https://crontask.example.com/admin/runs/run/{failed_run.pk}/change/" in text


def test_the_message_template_can_be_overridden(settings, tmp_path, failed_run):
    (tmp_path / "alerts").mkdir()
    (tmp_path / "alerts" / "message.txt").write_text("{{ job.id }} is {{ event }} ({{ run.duration_ms }} ms)")
    settings.TEMPLATES = [{**settings.TEMPLATES[0], "DIRS": [tmp_path]}]
    assert build_message("failed", job=failed_run.job, run=failed_run) == "nightly is failed (1234 ms)\n"


def test_the_webhook_sends_the_event_with_its_job_and_run(
    receiver, eager, failed_run, django_capture_on_commit_callbacks
):
    from tests.alerts.receiver import SECRET

    channel = services.channel_create(
        data={"name": "hook", "kind": "webhook", "target": receiver.url + "/webhook", "secret": SECRET}
    )
    with django_capture_on_commit_callbacks(execute=True):
        text = build_message("failed", job=failed_run.job, run=failed_run)
        notify(channel, "failed", text, job=failed_run.job, run=failed_run)
    assert Notification.objects.get().status == "sent"
    data = json.loads(receiver.requests[0][3])
    assert data["event"] == "failed"
    assert data["subject"] == "[Crontask] Nightly export: Failed"
    assert data["job"] == {"id": "nightly", "name": "Nightly export", "timezone": "Asia/Shanghai"}
    assert data["run"]["id"] == failed_run.pk
    assert data["run"]["status"] == "failed"
    assert "job-token-98765" not in receiver.requests[0][3].decode()
