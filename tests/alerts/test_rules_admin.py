"""Alert rules in the admin (the API's checks, saved by the services), read-only incidents, the
notifications' rule, and the job form's "Alerts" section with its inline of the rules naming it."""

from __future__ import annotations

import re

import pytest
from django.utils import timezone

from alerts import rules, selectors, services
from alerts.models import AlertRule, Incident, Notification
from jobs import services as job_services
from tests.admin.test_admin_basics import form as job_form

pytestmark = pytest.mark.django_db

URL = "http://127.0.0.1:9/"


@pytest.fixture
def ops():
    return services.channel_create(data={"name": "ops", "kind": "webhook", "target": URL})


@pytest.fixture(autouse=True)
def jobs():
    return [
        job_services.job_create(data={"id": name, "cron": "*/5 * * * *", "url": URL, "method": "GET"})
        for name in ("a", "b", "c")
    ]


@pytest.fixture(autouse=True)
def fresh_cache():
    selectors.rules_changed()
    yield
    selectors.rules_changed()


def rule_form(**fields: object) -> dict[str, object]:
    base = {"name": "r", "event": "failed", "threshold": "", "jobs": [], "remind_every_seconds": "", "enabled": "on"}
    return {**base, **fields}


def open_incident(rule: AlertRule, job_id: str) -> Incident:
    now = timezone.now()
    return Incident.objects.create(rule=rule, job_id=job_id, event=rule.event, opened_at=now, last_notified_at=now)


def test_a_rule_added_in_the_admin_goes_through_the_service(admin_client, ops, django_capture_on_commit_callbacks):
    assert selectors.enabled_rules() == []
    form = rule_form(event="consecutive_failures", threshold="3", jobs=["a", "b"], channels=[ops.pk])
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post("/admin/alerts/alertrule/add/", form)
    assert response.status_code == 302, response.content.decode()[:3000]
    rule = AlertRule.objects.get()
    assert (rule.event, rule.threshold) == ("consecutive_failures", 3)
    assert sorted(rule.jobs.values_list("id", flat=True)) == ["a", "b"]
    assert list(rule.channels.all()) == [ops]
    assert [r.id for r in selectors.rules_watching("a")] == [rule.pk]  # the cache was cleared


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"event": "consecutive_failures"}, "consecutive_failures needs a threshold"),
        ({"threshold": "5"}, "Not used by failed"),
        ({"remind_every_seconds": "30"}, "at least 60 seconds"),
        ({"channels": []}, "at least one channel"),
    ],
)
def test_the_admin_form_refuses_what_the_api_refuses(admin_client, ops, fields, reason):
    response = admin_client.post("/admin/alerts/alertrule/add/", {**rule_form(channels=[ops.pk]), **fields})
    assert response.status_code == 200
    assert reason in response.content.decode()
    assert not AlertRule.objects.exists()


def test_the_rule_page_searches_jobs_as_typed_instead_of_listing_them(admin_client, ops):
    rule = rules.rule_create(data={"name": "r", "event": "failed", "jobs": ["b"], "channels": [ops.pk]})
    page = admin_client.get(f"/admin/alerts/alertrule/{rule.pk}/change/").content.decode()
    jobs_select = re.search(r'<select name="jobs".*?</select>', page, re.S)
    assert jobs_select is not None
    assert "admin-autocomplete" in jobs_select.group(0)
    assert re.findall(r'<option value="([^"]*)"', jobs_select.group(0)) == ["b"]  # the chosen one only
    assert 'type="checkbox" name="channels"' in page
    assert admin_client.get("/admin/alerts/alertrule/add/").status_code == 200
    found = admin_client.get(
        "/admin/autocomplete/", {"app_label": "alerts", "model_name": "alertrule", "field_name": "jobs", "term": "c"}
    ).json()
    assert [r["id"] for r in found["results"]] == ["c"]


def test_disabling_a_rule_in_the_admin_closes_its_incidents(admin_client, ops):
    rule = rules.rule_create(data={"name": "r", "event": "failed", "channels": [ops.pk]})
    incident = open_incident(rule, "a")
    response = admin_client.post(
        f"/admin/alerts/alertrule/{rule.pk}/change/", {**rule_form(channels=[ops.pk]), "enabled": ""}
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    incident.refresh_from_db()
    assert incident.closed_at is not None
    assert AlertRule.objects.get().enabled is False


def test_a_rule_deleted_in_the_admin_goes_through_the_service(admin_client, ops, django_capture_on_commit_callbacks):
    rule = rules.rule_create(data={"name": "r", "event": "failed", "channels": [ops.pk]})
    assert [r.id for r in selectors.enabled_rules()] == [rule.pk]
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(f"/admin/alerts/alertrule/{rule.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert not AlertRule.objects.exists()
    assert selectors.enabled_rules() == []


def test_the_rule_list_shows_event_threshold_and_what_it_watches(admin_client, ops):
    rules.rule_create(data={"name": "slow ones", "event": "slow", "threshold": 5000, "channels": [ops.pk]})
    rules.rule_create(data={"name": "late a", "event": "late", "jobs": ["a"], "channels": [ops.pk]})
    page = admin_client.get("/admin/alerts/alertrule/").content.decode()
    for text in ("slow ones", "5000", "every job", "late a", "1 job<"):
        assert text in page
    assert "late a" not in admin_client.get("/admin/alerts/alertrule/", {"event": "slow"}).content.decode()


def test_incidents_are_read_only_in_the_admin_and_filtered_by_state_and_job(admin_client, ops):
    rule = rules.rule_create(data={"name": "watcher", "event": "failed", "channels": [ops.pk]})
    open_one = open_incident(rule, "a")
    closed = open_incident(rule, "b")
    closed.closed_at = timezone.now()
    closed.save()
    listed = admin_client.get("/admin/alerts/incident/").content.decode()
    assert "watcher" in listed
    only_open = admin_client.get("/admin/alerts/incident/", {"open": "1"}).content.decode()
    assert f"/admin/alerts/incident/{open_one.pk}/change/" in only_open
    assert f"/admin/alerts/incident/{closed.pk}/change/" not in only_open
    only_b = admin_client.get("/admin/alerts/incident/", {"job": "b"}).content.decode()
    assert f"/admin/alerts/incident/{closed.pk}/change/" in only_b
    assert f"/admin/alerts/incident/{open_one.pk}/change/" not in only_b
    page = admin_client.get(f"/admin/alerts/incident/{open_one.pk}/change/").content.decode()
    assert 'name="_save"' not in page
    assert admin_client.get("/admin/alerts/incident/add/").status_code == 403


def test_notifications_show_their_rule_in_the_admin(admin_client, ops):
    rule = rules.rule_create(data={"name": "the rule", "event": "failed", "channels": [ops.pk]})
    incident = open_incident(rule, "a")
    note = Notification.objects.create(channel=ops, rule=rule, incident=incident, job_id="a", event="failed")
    assert "the rule" in admin_client.get("/admin/alerts/notification/").content.decode()
    page = admin_client.get(f"/admin/alerts/notification/{note.pk}/change/").content.decode()
    assert "the rule" in page
    assert f"/admin/alerts/incident/{incident.pk}/change/" in page


def test_the_job_page_has_an_alerts_section(admin_client, ops):
    every = rules.rule_create(data={"name": "every failure", "event": "failed", "channels": [ops.pk]})
    rules.rule_create(data={"name": "off", "event": "late", "channels": [ops.pk], "enabled": False})
    named = rules.rule_create(data={"name": "slow a", "event": "slow", "jobs": ["a"], "channels": [ops.pk]})
    incident = open_incident(every, "a")
    page = admin_client.get("/admin/jobs/job/a/change/").content.decode()
    section = re.search(r'<div class="ct-job-alerts">.*?</div>', page, re.S)
    assert section is not None
    assert f"/admin/alerts/alertrule/{every.pk}/change/" in section.group(0)
    assert "off" not in section.group(0)  # disabled
    assert f"/admin/alerts/incident/{incident.pk}/change/" in section.group(0)
    assert "/admin/alerts/incident/?job=a" in section.group(0)
    assert f'<option value="{named.pk}" selected>' in page  # the inline: the rules naming it
    assert "alert rules naming this job" in page.lower()
    other = admin_client.get("/admin/jobs/job/b/change/").content.decode()
    assert "Open incidents:</p><ul><li>none</li>" in other
    assert admin_client.get("/admin/jobs/job/add/").status_code == 200


def inline_form(page: str, rows: list[dict[str, object]]) -> dict[str, object]:
    """The job page's inline of rules as POSTed: ``rows`` as its forms (``id`` for a stored one)."""
    prefix = re.search(r'name="([^"]+)-TOTAL_FORMS"', page)
    assert prefix is not None
    name = prefix.group(1)
    data: dict[str, object] = {
        f"{name}-TOTAL_FORMS": len(rows),
        f"{name}-INITIAL_FORMS": sum(1 for row in rows if "id" in row),
        f"{name}-MIN_NUM_FORMS": 0,
        f"{name}-MAX_NUM_FORMS": 1000,
    }
    for n, row in enumerate(rows):
        data |= {f"{name}-{n}-{key}": value for key, value in row.items()}
    return data


def test_rules_are_attached_and_detached_in_the_job_form(admin_client, ops, django_capture_on_commit_callbacks):
    b_rule = rules.rule_create(data={"name": "b's", "event": "failed", "jobs": ["b"], "channels": [ops.pk]})
    both = rules.rule_create(data={"name": "both", "event": "slow", "jobs": ["a", "b"], "channels": [ops.pk]})
    incident = open_incident(both, "a")
    assert [r.id for r in selectors.rules_watching("a")] == [both.pk]
    page = admin_client.get("/admin/jobs/job/a/change/").content.decode()
    link = AlertRule.jobs.through.objects.get(alertrule=both, job_id="a")
    rows = [{"id": link.pk, "job": "a", "alertrule": both.pk, "DELETE": "on"}, {"job": "a", "alertrule": b_rule.pk}]
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post("/admin/jobs/job/a/change/", {**job_form(id="a"), **inline_form(page, rows)})
    assert response.status_code == 302, response.content.decode()[:3000]
    assert sorted(b_rule.jobs.values_list("id", flat=True)) == ["a", "b"]
    assert list(both.jobs.values_list("id", flat=True)) == ["b"]
    incident.refresh_from_db()
    assert incident.closed_at is not None  # "both" no longer watches a
    assert [r.id for r in selectors.rules_watching("a")] == [b_rule.pk]  # the cache was cleared


def test_the_job_form_never_turns_a_rule_into_one_for_every_job_or_one_job(admin_client, ops):
    every = rules.rule_create(data={"name": "every", "event": "failed", "channels": [ops.pk]})
    alone = rules.rule_create(data={"name": "alone", "event": "failed", "jobs": ["a"], "channels": [ops.pk]})
    page = admin_client.get("/admin/jobs/job/a/change/").content.decode()
    link = AlertRule.jobs.through.objects.get(alertrule=alone)
    rows = [{"id": link.pk, "job": "a", "alertrule": alone.pk, "DELETE": "on"}, {"job": "a", "alertrule": every.pk}]
    response = admin_client.post("/admin/jobs/job/a/change/", {**job_form(id="a"), **inline_form(page, rows)})
    assert response.status_code == 200
    text = response.content.decode()
    assert "&#x27;every&#x27; watches every job" in text
    assert "&#x27;alone&#x27; watches this job alone" in text
    assert list(alone.jobs.values_list("id", flat=True)) == ["a"]
    assert not every.jobs.exists()


def test_a_job_form_posted_without_the_alerts_section_keeps_the_jobs_rules(admin_client, ops):
    rule = rules.rule_create(data={"name": "alone", "event": "failed", "jobs": ["a"], "channels": [ops.pk]})
    response = admin_client.post("/admin/jobs/job/a/change/", job_form(id="a", name="renamed"))
    assert response.status_code == 302, response.content.decode()[:3000]
    assert list(rule.jobs.values_list("id", flat=True)) == ["a"]


def test_a_save_refused_after_the_form_passed_is_an_error_message_not_a_500(admin_client, ops, monkeypatch):
    real_clean = rules.rule_clean
    checks = []

    def job_deleted_meanwhile(data, *, stored=None):
        checks.append(1)
        if len(checks) > 1:  # the form's check passed; by the service's, job b was gone
            raise rules.ValidationError({"jobs": "No such job: b."})
        return real_clean(data, stored=stored)

    monkeypatch.setattr(rules, "rule_clean", job_deleted_meanwhile)
    response = admin_client.post("/admin/alerts/alertrule/add/", rule_form(jobs=["b"], channels=[ops.pk]), follow=True)
    assert response.status_code == 200
    assert "Nothing was saved: No such job: b." in response.content.decode()
    assert not AlertRule.objects.exists()
