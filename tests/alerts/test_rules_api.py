"""/api/alert-rules/ and /api/incidents/: validation with the field and its reason (never a 500),
create, change, partial change, delete, filters, search, ordering; the notifications' rule and
incident."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from alerts import rules, services
from alerts.models import AlertRule, Incident, Notification
from jobs import services as job_services

pytestmark = pytest.mark.django_db

URL = "http://127.0.0.1:9/"


@pytest.fixture
def ops():
    return services.channel_create(data={"name": "ops", "kind": "webhook", "target": URL})


@pytest.fixture
def mail():
    return services.channel_create(data={"name": "mail", "kind": "email", "target": "ops@example.com"})


@pytest.fixture
def jobs():
    return [job_services.job_create(data={"id": name, "interval_seconds": 60, "url": URL}) for name in ("a", "b")]


def open_incident(rule: AlertRule, job_id: str) -> Incident:
    now = timezone.now()
    return Incident.objects.create(rule=rule, job_id=job_id, event=rule.event, opened_at=now, last_notified_at=now)


def test_a_rule_is_created_and_shown_with_the_ids_of_its_jobs_and_channels(api, ops, mail, jobs):
    body = {"name": "slow ones", "event": "slow", "threshold": 5000, "jobs": ["b", "a"], "channels": [mail.pk, ops.pk]}
    response = api.post("/api/alert-rules/", body, format="json")
    assert response.status_code == 201, response.content
    shown = response.json()
    assert set(shown) == {
        *("id", "name", "event", "threshold", "jobs", "tags", "channels"),
        *("remind_every_seconds", "enabled", "created_at", "updated_at"),
    }
    assert (shown["jobs"], shown["channels"]) == (["a", "b"], sorted([ops.pk, mail.pk]))
    assert (shown["threshold"], shown["remind_every_seconds"], shown["enabled"]) == (5000, None, True)
    assert api.get(f"/api/alert-rules/{shown['id']}/").json() == shown
    assert api.get("/api/alert-rules/").json()["results"] == [shown]


def test_a_rule_for_every_job_has_no_jobs(api, ops):
    response = api.post("/api/alert-rules/", {"name": "all", "event": "failed", "channels": [ops.pk]}, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["jobs"] == []
    assert AlertRule.objects.get().jobs.count() == 0


@pytest.mark.parametrize(
    ("data", "field", "reason"),
    [
        ({"name": " "}, "name", "needs a name"),
        ({"event": "exploded"}, "event", "is not a valid choice"),
        ({"event": "consecutive_failures"}, "threshold", "needs a threshold"),
        ({"event": "consecutive_failures", "threshold": 0}, "threshold", "from 1"),
        ({"event": "no_success"}, "threshold", "needs a threshold (seconds)"),
        ({"event": "no_success", "threshold": -5}, "threshold", "from 1"),
        ({"event": "slow", "threshold": 0}, "threshold", "milliseconds from 1"),
        ({"event": "late", "threshold": 2**63}, "threshold", "to 86400000"),
        ({"event": "slow", "threshold": 10**400}, "threshold", "86400000"),
        ({"event": "no_success", "threshold": 10**11}, "threshold", "seconds from 1 to 31622400"),
        ({"event": "consecutive_failures", "threshold": 10**6}, "threshold", "from 1 to 10000"),
        ({"threshold": 3}, "threshold", "Not used by failed"),
        ({"event": "recovered", "threshold": 3}, "threshold", "Not used by recovered"),
        ({"threshold": "three"}, "threshold", "valid integer"),
        ({"channels": []}, "channels", "at least one channel"),
        ({"channels": [999999]}, "channels", "No such channel: 999999"),
        ({"channels": [2**70]}, "channels", "No such channel"),
        ({"channels": "1"}, "channels", "list"),
        ({"channels": ["x"]}, "channels", "valid integer"),
        ({"jobs": ["a", "nope", "gone"]}, "jobs", "No such job: nope, gone."),
        ({"jobs": ["x" * 500]}, "jobs", "No such job"),
        ({"jobs": "a"}, "jobs", "list"),
        ({"jobs": [{"id": "a"}]}, "jobs", "valid string"),
        ({"remind_every_seconds": 59}, "remind_every_seconds", "at least 60 seconds"),
        ({"remind_every_seconds": 2**40}, "remind_every_seconds", "at most 2147483647"),
        ({"enabled": "maybe"}, "enabled", "valid boolean"),
    ],
)
def test_a_bad_rule_is_refused_with_the_fields_reason(api, ops, jobs, data, field, reason):
    body = {"name": "r", "event": "failed", "channels": [ops.pk], **data}
    response = api.post("/api/alert-rules/", body, format="json")
    assert response.status_code == 400, response.content
    assert reason in str(response.json()[field])
    assert not AlertRule.objects.exists()


def test_json_numbers_beyond_a_float_are_refused(api, ops):
    body = '{"name": "r", "event": "slow", "threshold": 1e400, "channels": [' + str(ops.pk) + "]}"
    response = api.post("/api/alert-rules/", body, content_type="application/json")
    assert response.status_code == 400, response.content
    assert "threshold" in response.json()


def test_every_problem_is_told_at_once(api):
    body = {"name": "", "event": "consecutive_failures", "channels": [], "jobs": ["nope"], "remind_every_seconds": 1}
    response = api.post("/api/alert-rules/", body, format="json")
    assert response.status_code == 400
    assert set(response.json()) == {"name", "threshold", "channels", "jobs", "remind_every_seconds"}


def test_missing_ids_are_named_up_to_a_bound(api, ops):
    body = {"name": "r", "event": "failed", "channels": [ops.pk], "jobs": [f"j{n}" for n in range(30)]}
    reason = api.post("/api/alert-rules/", body, format="json").json()["jobs"][0]
    assert reason.startswith("No such job: j0, j1,")
    assert reason.endswith("j19 and 10 more.")


def test_a_partial_change_keeps_the_stored_values(api, ops, mail, jobs):
    data = {"name": "r", "event": "consecutive_failures", "threshold": 3, "jobs": ["a"], "channels": [ops.pk]}
    rule = rules.rule_create(data={**data, "remind_every_seconds": 600})
    response = api.patch(f"/api/alert-rules/{rule.pk}/", {"channels": [mail.pk]}, format="json")
    assert response.status_code == 200, response.content
    shown = response.json()
    assert (shown["name"], shown["event"], shown["threshold"]) == ("r", "consecutive_failures", 3)
    assert (shown["jobs"], shown["channels"], shown["remind_every_seconds"]) == (["a"], [mail.pk], 600)
    # A change is checked with what it keeps: the stored threshold means nothing to failed.
    refused = api.patch(f"/api/alert-rules/{rule.pk}/", {"event": "failed"}, format="json")
    assert refused.status_code == 400
    assert "Not used by failed" in str(refused.json()["threshold"])
    cleared = api.patch(f"/api/alert-rules/{rule.pk}/", {"event": "failed", "threshold": None}, format="json")
    assert cleared.status_code == 200, cleared.content
    assert (cleared.json()["event"], cleared.json()["threshold"]) == ("failed", None)


def test_a_put_of_a_gets_output_works(api, ops, jobs):
    rule = rules.rule_create(data={"name": "r", "event": "late", "jobs": ["a", "b"], "channels": [ops.pk]})
    shown = api.get(f"/api/alert-rules/{rule.pk}/").json()
    response = api.put(f"/api/alert-rules/{rule.pk}/", {**shown, "name": "renamed", "jobs": []}, format="json")
    assert response.status_code == 200, response.content
    assert (response.json()["name"], response.json()["jobs"]) == ("renamed", [])
    missing = api.put(f"/api/alert-rules/{rule.pk}/", {"name": "r"}, format="json")
    assert missing.status_code == 400
    assert set(missing.json()) == {"event", "channels"}


def test_a_rule_is_deleted_with_its_incidents_and_its_notifications_stay(api, ops, jobs):
    rule = rules.rule_create(data={"name": "r", "event": "failed", "channels": [ops.pk]})
    incident = open_incident(rule, "a")
    notification = Notification.objects.create(channel=ops, rule=rule, incident=incident, job_id="a", event="failed")
    assert api.delete(f"/api/alert-rules/{rule.pk}/").status_code == 204
    assert not AlertRule.objects.exists()
    assert not Incident.objects.exists()
    notification.refresh_from_db()
    assert (notification.rule_id, notification.incident_id) == (None, None)


def test_rules_are_filtered_searched_and_ordered(api, ops, mail, jobs):
    failed = rules.rule_create(data={"name": "ops failures", "event": "failed", "channels": [ops.pk]})
    late = rules.rule_create(data={"name": "late a", "event": "late", "jobs": ["a"], "channels": [mail.pk]})
    off = rules.rule_create(
        data={"name": "a slow b", "event": "slow", "jobs": ["a", "b"], "channels": [ops.pk, mail.pk], "enabled": False}
    )

    def names(**query: object) -> list[str]:
        response = api.get("/api/alert-rules/", query)
        assert response.status_code == 200, response.content
        return [rule["name"] for rule in response.json()["results"]]

    assert names(event="late") == [late.name]
    assert names(enabled="false") == [off.name]
    assert names(channel=ops.pk) == [failed.name, off.name]
    assert names(job="a") == [late.name, off.name]  # the rules naming it: not those for every job
    assert names(job="b") == [off.name]
    assert names(search="slow") == [off.name]
    assert names(ordering="name") == [off.name, late.name, failed.name]
    assert names(ordering="-event") == [off.name, late.name, failed.name]
    for bad in ({"event": "exploded"}, {"job": "nope"}, {"channel": 2**70}, {"channel": "x"}):
        assert api.get("/api/alert-rules/", bad).status_code == 400, bad


def test_incidents_are_read_only_and_filtered(api, ops, jobs):
    failed = rules.rule_create(data={"name": "f", "event": "failed", "channels": [ops.pk]})
    slow = rules.rule_create(data={"name": "s", "event": "slow", "channels": [ops.pk]})
    first = open_incident(failed, "a")
    closed = open_incident(slow, "b")
    closed.closed_at = closed.opened_at + timedelta(minutes=5)
    closed.save()
    later = open_incident(slow, "a")
    listed = api.get("/api/incidents/").json()
    assert [i["id"] for i in listed["results"]] == [later.pk, closed.pk, first.pk]
    assert set(listed["results"][0]) == {
        *("id", "rule", "job", "event", "occurrences", "first_run", "last_run"),
        *("opened_at", "last_notified_at", "closed_at"),
    }

    def ids(**query: object) -> list[int]:
        response = api.get("/api/incidents/", query)
        assert response.status_code == 200, response.content
        return [incident["id"] for incident in response.json()["results"]]

    assert ids(open="true") == [later.pk, first.pk]
    assert ids(open="false") == [closed.pk]
    assert ids(rule=slow.pk) == [later.pk, closed.pk]
    assert ids(job="b") == [closed.pk]
    assert ids(event="failed") == [first.pk]
    assert ids(ordering="opened_at") == [first.pk, closed.pk, later.pk]
    assert api.get("/api/incidents/", {"event": "exploded"}).status_code == 400
    assert api.post("/api/incidents/", {}, format="json").status_code == 405
    assert api.delete(f"/api/incidents/{first.pk}/").status_code == 405


def test_notifications_show_and_filter_by_their_rule_and_incident(api, ops, jobs):
    rule = rules.rule_create(data={"name": "f", "event": "failed", "channels": [ops.pk]})
    incident = open_incident(rule, "a")
    alerted = Notification.objects.create(channel=ops, rule=rule, incident=incident, job_id="a", event="failed")
    Notification.objects.create(channel=ops, event="test")
    listed = api.get("/api/notifications/", {"rule": rule.pk}).json()["results"]
    assert [(n["id"], n["rule"], n["incident"]) for n in listed] == [(alerted.pk, rule.pk, incident.pk)]
    assert api.get("/api/notifications/").json()["count"] == 2
