"""Rules weighed as runs end: real fires of a real HTTP job (the local target), notifications
delivered to the local receiver. One alert per incident, however often the job fails; recovery
closes it and tells the channels once."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from alerts import evaluation, selectors, services
from alerts.models import AlertRule, Channel, Incident, Notification
from jobs import services as job_services
from jobs.models import Job
from runs import watchers
from runs.execution import run_in_foreground
from runs.models import Run
from runs.tasks import execute_job
from tests.alerts.receiver import SECRET

pytestmark = pytest.mark.django_db
START = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def fresh_rules():
    selectors.rules_changed()
    yield
    selectors.rules_changed()


@pytest.fixture
def hook(receiver) -> Channel:
    data = {"name": "ops hook", "kind": "webhook", "target": receiver.url + "/webhook", "secret": SECRET}
    return services.channel_create(data=data)


def make_rule(event: str, channels: list[Channel], *, jobs: Sequence[str] = (), **fields) -> AlertRule:
    rule = AlertRule.objects.create(name=event, event=event, **fields)
    rule.channels.set(channels)
    rule.jobs.set(Job.objects.filter(pk__in=jobs))
    assert rule.jobs.count() == len(jobs)
    selectors.rules_changed()
    return rule


def make_job(url: str, job_id: str = "export", **extra) -> Job:
    data = {"id": job_id, "name": "Nightly export", "interval_seconds": 60, "url": url, **extra}
    return job_services.job_create(data=data)


def fire(capture, n: int, job_id: str = "export") -> Run:
    """The n-th fire of the job, run by the worker's task here; the notifications it queues are delivered."""
    at = START + timedelta(minutes=n)
    with capture(execute=True):
        execute_job.apply(kwargs={"job_id": job_id, "scheduled_for": at.isoformat()}, throw=True)
    return Run.objects.get(job_id=job_id, scheduled_for=at, attempt=1)


def received(receiver) -> list[dict]:
    return [json.loads(body) for path, _headers, _query, body in receiver.requests if path == "/webhook"]


def test_a_job_failing_again_and_again_sends_one_alert_and_one_recovery(
    http_target, receiver, eager, hook, django_capture_on_commit_callbacks
):
    make_rule(AlertRule.Event.FAILED, [hook])
    job = make_job(http_target.url + "/status/500")
    runs = [fire(django_capture_on_commit_callbacks, n) for n in range(5)]
    assert {run.status for run in runs} == {"failed"}
    incident = Incident.objects.get()
    assert (incident.event, incident.occurrences, incident.closed_at) == ("failed", 5, None)
    assert (incident.first_run_id, incident.last_run_id) == (runs[0].pk, runs[-1].pk)
    [alert] = received(receiver)
    assert alert["event"] == "failed"
    assert alert["job"]["id"] == "export"
    assert alert["run"]["id"] == runs[0].pk
    assert "Nightly export" in alert["text"]
    assert "HTTP 500" in alert["text"]

    job_services.job_update(job=job, data={"url": http_target.url + "/ok"})
    fixed = fire(django_capture_on_commit_callbacks, 5)
    assert fixed.status == "success"
    incident.refresh_from_db()
    assert incident.closed_at is not None
    alerts = received(receiver)
    assert [a["event"] for a in alerts] == ["failed", "recovered"]
    assert alerts[1]["run"]["id"] == fixed.pk
    assert "Succeeded again" in alerts[1]["text"]
    recovered = Notification.objects.get(event="recovered")
    assert (recovered.status, recovered.incident_id, recovered.job_id) == ("sent", incident.pk, "export")

    fire(django_capture_on_commit_callbacks, 6)  # a success with nothing open tells no one
    assert len(received(receiver)) == 2


def test_an_attempt_that_is_retried_is_not_a_failure_yet(
    http_target, receiver, eager, hook, queued_tasks, django_capture_on_commit_callbacks
):
    make_rule(AlertRule.Event.FAILED, [hook])
    make_job(http_target.url + "/status/500", max_retries=1)
    first = fire(django_capture_on_commit_callbacks, 0)
    assert first.status == "failed"
    assert Run.objects.filter(attempt=2).exists()
    assert received(receiver) == []
    assert not Incident.objects.exists()
    retry = Run.objects.get(attempt=2)
    with django_capture_on_commit_callbacks(execute=True):
        execute_job.apply(kwargs={"job_id": "export", "run_id": retry.pk}, throw=True)
    [alert] = received(receiver)
    assert alert["run"]["id"] == retry.pk
    assert "after 2 attempts" in alert["text"]


def test_consecutive_failures_alert_on_the_threshold_th_fire_and_only_then(
    http_target, receiver, eager, hook, django_capture_on_commit_callbacks
):
    make_rule(AlertRule.Event.CONSECUTIVE_FAILURES, [hook], threshold=3)
    job = make_job(http_target.url + "/status/500")
    fire(django_capture_on_commit_callbacks, 0)
    job_services.job_update(job=job, data={"url": http_target.url + "/ok"})
    fire(django_capture_on_commit_callbacks, 1)  # a success breaks the row
    job_services.job_update(job=job, data={"url": http_target.url + "/status/503"})
    fire(django_capture_on_commit_callbacks, 2)
    fire(django_capture_on_commit_callbacks, 3)
    assert received(receiver) == []
    third = fire(django_capture_on_commit_callbacks, 4)
    [alert] = received(receiver)
    assert alert["event"] == "consecutive_failures"
    assert alert["run"]["id"] == third.pk
    assert "3 fires in a row failed" in alert["text"]
    fire(django_capture_on_commit_callbacks, 5)
    assert len(received(receiver)) == 1
    assert Incident.objects.get().occurrences == 2


def test_a_rule_watches_only_its_jobs(http_target, receiver, eager, hook, django_capture_on_commit_callbacks):
    make_job(http_target.url + "/status/500", job_id="other")
    make_job(http_target.url + "/status/500", job_id="export")
    make_rule(AlertRule.Event.FAILED, [hook], jobs=["export"])
    fire(django_capture_on_commit_callbacks, 0, job_id="other")
    assert received(receiver) == []
    fire(django_capture_on_commit_callbacks, 0, job_id="export")
    assert [a["job"]["id"] for a in received(receiver)] == ["export"]


def test_a_slow_run_over_the_threshold_alerts_and_a_fast_one_closes_it_quietly(
    http_target, receiver, eager, hook, django_capture_on_commit_callbacks
):
    make_rule(AlertRule.Event.SLOW, [hook], threshold=200)
    job = make_job(http_target.url + "/slow/0.4")
    slow = fire(django_capture_on_commit_callbacks, 0)
    [alert] = received(receiver)
    assert alert["event"] == "slow"
    assert alert["run"]["id"] == slow.pk
    assert f"took {slow.duration_ms} ms; the limit is 200 ms" in alert["text"]
    job_services.job_update(job=job, data={"url": http_target.url + "/ok"})
    fire(django_capture_on_commit_callbacks, 1)
    assert Incident.objects.get().closed_at is not None
    assert len(received(receiver)) == 1  # slowness passing is not a "recovered"


def test_slow_with_no_threshold_is_three_times_the_p95_of_the_last_successes(hook):
    job = make_job("http://127.0.0.1:9/")
    rule = make_rule(AlertRule.Event.SLOW, [hook])

    def ended(duration_ms: int, status: str = "success") -> Run:
        return Run.objects.create(
            job=job, trigger="manual", status=status, started_at=timezone.now(), duration_ms=duration_ms
        )

    for _ in range(9):
        ended(100)
    evaluation.run_ended(ended(10_000), job, True)  # 9 runs are too few to judge by
    assert not Incident.objects.exists()
    ended(
        120
    )  # the 10th; the p95 of [100 (9 times), 120, 10 000] by nearest rank is 10 000: judge on the 10 usual ones
    Run.objects.filter(duration_ms=10_000).delete()
    assert evaluation.slow_limit_ms(job, ended(1)) == 360
    evaluation.run_ended(ended(350, "failed"), job, True)  # judged, but only successes make the usual
    assert not Incident.objects.exists()
    evaluation.run_ended(ended(500), job, True)  # 5 times its usual duration
    incident = Incident.objects.get()
    assert (incident.rule_id, incident.event) == (rule.pk, "slow")
    assert "3 times the p95" in Notification.objects.get().message


def test_late_fires_and_misfires_alert(http_target, receiver, eager, hook, django_capture_on_commit_callbacks):
    make_rule(AlertRule.Event.LATE, [hook], threshold=60_000)
    make_job(http_target.url + "/ok", misfire_grace_seconds=3600 * 24 * 365 * 20)
    fire(django_capture_on_commit_callbacks, 0)  # START is long past: it started years late
    [alert] = received(receiver)
    assert alert["event"] == "late"
    assert "after its time; the limit is 60000 ms" in alert["text"]

    make_job(http_target.url + "/ok", job_id="strict", misfire_grace_seconds=5)
    make_rule(AlertRule.Event.LATE, [hook], jobs=["strict"])  # no threshold: misfires only
    skipped = fire(django_capture_on_commit_callbacks, 0, job_id="strict")
    assert skipped.status == "skipped"
    late = [a for a in received(receiver) if a["job"]["id"] == "strict"]
    assert len(late) == 2  # one per rule watching it, each its own incident
    assert all("The fire was skipped: Misfire:" in a["text"] for a in late)
    assert http_target.hits.get("/ok", 0) == 1  # the skipped fire made no call


def test_no_success_opens_once_when_nothing_runs_and_a_success_recovers_it(
    http_target, receiver, eager, hook, django_capture_on_commit_callbacks
):
    from alerts.sweep import sweep

    rule = make_rule(AlertRule.Event.NO_SUCCESS, [hook], threshold=600)
    job = make_job(http_target.url + "/ok")
    with django_capture_on_commit_callbacks(execute=True):
        assert sweep().opened == 0  # created just now: not silent for 10 minutes yet
    later = timezone.now() + timedelta(minutes=11)
    with django_capture_on_commit_callbacks(execute=True):
        assert sweep(now=later).opened == 1
    with django_capture_on_commit_callbacks(execute=True):
        assert sweep(now=later + timedelta(minutes=5)).opened == 0  # still open: no second alert
    [alert] = received(receiver)
    assert alert["event"] == "no_success"
    assert alert["run"] is None
    assert "No successful run for 600 s (it has never succeeded)" in alert["text"]
    job_services.job_pause(job=job)
    job_services.job_resume(job=job)
    fire(django_capture_on_commit_callbacks, 0)
    assert [a["event"] for a in received(receiver)] == ["no_success", "recovered"]
    assert Incident.objects.get(rule=rule).closed_at is not None


def test_paused_jobs_are_not_expected_to_succeed(hook):
    from alerts.sweep import sweep

    make_rule(AlertRule.Event.NO_SUCCESS, [hook], threshold=60)
    job_services.job_pause(job=make_job("http://127.0.0.1:9/"))
    assert sweep(now=timezone.now() + timedelta(hours=1)).opened == 0


def test_reminders_repeat_while_the_incident_stays_open(
    http_target, receiver, eager, hook, django_capture_on_commit_callbacks
):
    from alerts.sweep import sweep

    make_rule(AlertRule.Event.FAILED, [hook], remind_every_seconds=3600)
    make_job(http_target.url + "/status/500")
    fire(django_capture_on_commit_callbacks, 0)
    for minutes, reminded in ((59, 0), (61, 1), (62, 0)):
        with django_capture_on_commit_callbacks(execute=True):
            assert sweep(now=timezone.now() + timedelta(minutes=minutes)).reminded == reminded
    alerts = received(receiver)
    assert [a["event"] for a in alerts] == ["failed", "failed"]
    assert alerts[1]["text"].startswith("[Crontask] Still open: Failed")
    assert "seen 1 time." in alerts[1]["text"]


def test_the_recovered_rule_adds_its_channels_to_the_recovery(
    http_target, receiver, eager, hook, django_capture_on_commit_callbacks
):
    chat = services.channel_create(data={"name": "chat", "kind": "slack", "target": receiver.url + "/slack"})
    make_rule(AlertRule.Event.FAILED, [hook])
    make_rule(AlertRule.Event.RECOVERED, [chat])
    job = make_job(http_target.url + "/ok")
    fire(django_capture_on_commit_callbacks, 0)  # no failure alerted: no recovery to tell
    assert receiver.hits["/slack"] == 0
    job_services.job_update(job=job, data={"url": http_target.url + "/status/500"})
    fire(django_capture_on_commit_callbacks, 1)
    job_services.job_update(job=job, data={"url": http_target.url + "/ok"})
    fire(django_capture_on_commit_callbacks, 2)
    assert [a["event"] for a in received(receiver)] == ["failed", "recovered"]
    assert receiver.hits["/slack"] == 1


def test_a_job_no_rule_watches_costs_no_query(hook):
    job = make_job("http://127.0.0.1:9/")
    make_rule(AlertRule.Event.FAILED, [hook], jobs=[])  # watches every job …
    AlertRule.objects.update(enabled=False)  # … until it is disabled
    selectors.rules_changed()
    run = Run.objects.create(job=job, trigger="manual", status="failed")
    evaluation.run_ended(run, job, True)  # loads the (no) rules
    with CaptureQueriesContext(connection) as queries:
        watchers.run_ended(run, job, final=True)  # not even a savepoint
    assert len(queries) == 0


def test_a_watcher_that_fails_never_fails_the_run(http_target, monkeypatch, caplog):
    def broken(run, job, final):
        Job.objects.filter(pk=job.pk).update(name="written by the broken watcher")
        raise RuntimeError("the watcher broke")

    monkeypatch.setattr(watchers, "_watchers", [(broken, None)])
    make_job(http_target.url + "/ok")
    execute_job.apply(kwargs={"job_id": "export", "scheduled_for": START.isoformat()}, throw=True)
    run = Run.objects.get()
    assert run.status == "success"
    job = Job.objects.get()
    assert (job.name, job.success_count) == ("Nightly export", 1)  # its write undone, the run's kept
    assert "the watcher broke" in caplog.text


def test_deleting_a_job_deletes_its_incidents_and_keeps_the_record_of_what_was_sent(
    http_target, receiver, eager, hook, django_capture_on_commit_callbacks
):
    make_rule(AlertRule.Event.FAILED, [hook])
    job = make_job(http_target.url + "/status/500")
    fire(django_capture_on_commit_callbacks, 0)
    job_services.job_delete(job=job)
    assert not Incident.objects.exists()
    notification = Notification.objects.get()
    assert (notification.status, notification.job_id, notification.run_id) == ("sent", None, None)


def test_a_fire_whose_retry_is_skipped_sends_failed_for_the_attempt_that_failed(
    http_target, receiver, eager, hook, queued_tasks, django_capture_on_commit_callbacks
):
    make_rule(AlertRule.Event.FAILED, [hook])
    job = make_job(http_target.url + "/status/500", max_retries=1, concurrency_policy="forbid")
    first = fire(django_capture_on_commit_callbacks, 0)
    assert received(receiver) == []  # a retry follows …
    retry = Run.objects.get(attempt=2)
    # … and finds the job's next fire still running: under "forbid", it is skipped.
    Run.objects.create(job=job, trigger="scheduled", scheduled_for=START + timedelta(minutes=1), status="running",
                       started_at=timezone.now())  # fmt: skip
    with django_capture_on_commit_callbacks(execute=True):
        execute_job.apply(kwargs={"job_id": "export", "run_id": retry.pk}, throw=True)
    retry.refresh_from_db()
    assert retry.status == "skipped"
    [alert] = received(receiver)
    assert alert["run"]["id"] == first.pk
    assert "Its retry was skipped: Concurrency policy 'forbid'" in alert["text"]


def test_a_watcher_that_hits_a_deadlock_or_cannot_read_its_rules_never_fails_the_run(http_target, monkeypatch, caplog):
    from django.db import OperationalError

    def deadlocked(run, job, final):
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        raise OperationalError("deadlock detected")

    def unreadable(job_id):
        raise OperationalError("relation alerts_alertrule does not exist")

    monkeypatch.setattr(watchers, "_watchers", [(deadlocked, None), (deadlocked, unreadable)])
    make_job(http_target.url + "/ok")
    execute_job.apply(kwargs={"job_id": "export", "scheduled_for": START.isoformat()}, throw=True)
    run = Run.objects.get()
    assert (run.status, run.attempt) == ("success", 1)
    assert Job.objects.get().success_count == 1
    assert caplog.text.count("a watcher of run") == 2


def test_no_success_gives_a_job_changed_or_resumed_its_threshold_and_skips_one_offs(hook):
    from alerts.sweep import sweep

    make_rule(AlertRule.Event.NO_SUCCESS, [hook], threshold=600)
    make_job("http://127.0.0.1:9/", job_id="hourly")
    make_job("http://127.0.0.1:9/", job_id="by-hand", interval_seconds=None, trigger="manual")
    later = timezone.now() + timedelta(minutes=11)
    Job.objects.filter(pk="hourly").update(updated_at=later - timedelta(minutes=5))  # resumed 5 minutes before
    assert sweep(now=later).opened == 0
    assert sweep(now=later + timedelta(minutes=6)).opened == 1  # the manual job is not expected to run
    assert list(Incident.objects.values_list("job_id", flat=True)) == ["hourly"]


def test_a_recovery_names_the_rule_of_the_incident_and_a_manual_runs_start(
    http_target, receiver, eager, hook, django_capture_on_commit_callbacks
):
    rule = make_rule(AlertRule.Event.FAILED, [hook])
    job = make_job(http_target.url + "/status/500")
    fire(django_capture_on_commit_callbacks, 0)
    job_services.job_update(job=job, data={"url": http_target.url + "/ok"})
    with django_capture_on_commit_callbacks(execute=True):
        run_in_foreground(job=Job.objects.get(pk="export"))  # a manual run (no fire time)
    recovered = Notification.objects.get(event="recovered")
    assert recovered.rule_id == rule.pk
    assert "Started at: " in recovered.message
    assert "Scheduled for" not in recovered.message


def test_deleting_a_rules_last_channel_closes_its_incidents(
    http_target, receiver, eager, hook, django_capture_on_commit_callbacks
):
    rule = make_rule(AlertRule.Event.FAILED, [hook])
    make_job(http_target.url + "/status/500")
    fire(django_capture_on_commit_callbacks, 0)
    with django_capture_on_commit_callbacks(execute=True):
        services.channel_delete(channel=hook)
    assert Incident.objects.get(rule=rule).closed_at is not None
    assert rule.channels.count() == 0


def test_a_rule_or_channel_deleted_while_cached_never_breaks_a_runs_commit(
    http_target, receiver, eager, hook, django_capture_on_commit_callbacks
):
    from alerts.selectors import enabled_rules

    rule = make_rule(AlertRule.Event.FAILED, [hook])
    make_job(http_target.url + "/status/500")
    assert enabled_rules()  # cached, as another process would hold them
    AlertRule.objects.filter(pk=rule.pk).delete()  # deleted elsewhere: this process's cache is not told
    failed = fire(django_capture_on_commit_callbacks, 0)
    connection.check_constraints()  # what the commit would check: nothing names the deleted rule
    assert failed.status == "failed"
    assert not Incident.objects.exists()

    rule = make_rule(AlertRule.Event.FAILED, [hook])
    assert enabled_rules()
    Channel.objects.filter(pk=hook.pk).delete()
    fire(django_capture_on_commit_callbacks, 1)
    connection.check_constraints()
    assert Incident.objects.filter(rule=rule).exists()
    assert not Notification.objects.exists()


def test_while_the_rules_cannot_be_read_every_job_may_be_watched(monkeypatch):
    """None read yet and the read fails: no rule applies (``enabled_rules``), but a run's end is
    not taken for unwatched (``any_rule_may_watch``, which decides whether ``runs.outcomes`` may
    end it with its statement alone): it is told to the rules' watcher, which reads them again."""
    from django.db import OperationalError

    def unreadable():
        raise OperationalError("the database is away")

    monkeypatch.setattr(selectors, "load_enabled_rules", unreadable)
    selectors.rules_changed()
    assert selectors.enabled_rules() == []
    assert selectors.any_rule_may_watch("any-job") is True
    monkeypatch.undo()
    selectors.rules_changed()
    assert selectors.any_rule_may_watch("any-job") is False  # read now: there is no rule
