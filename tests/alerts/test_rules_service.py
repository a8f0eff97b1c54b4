"""alerts.rules: the open incidents a rule no longer stands behind are closed (disabled, deleted,
another event, a job it stops watching), and each write clears the cached rules once it commits."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from alerts import rules, selectors, services
from alerts.models import AlertRule, Incident
from jobs import services as job_services

pytestmark = pytest.mark.django_db

URL = "http://127.0.0.1:9/"


@pytest.fixture
def ops():
    return services.channel_create(data={"name": "ops", "kind": "webhook", "target": URL})


@pytest.fixture(autouse=True)
def jobs():
    return [job_services.job_create(data={"id": name, "interval_seconds": 60, "url": URL}) for name in ("a", "b")]


@pytest.fixture(autouse=True)
def fresh_cache():
    selectors.rules_changed()
    yield
    selectors.rules_changed()


def open_incident(rule: AlertRule, job_id: str) -> Incident:
    now = timezone.now()
    return Incident.objects.create(rule=rule, job_id=job_id, event=rule.event, opened_at=now, last_notified_at=now)


def is_open(incident: Incident) -> bool:
    incident.refresh_from_db()
    return incident.closed_at is None


def test_disabling_a_rule_closes_its_open_incidents_and_no_other(ops):
    rule = rules.rule_create(data={"name": "r", "event": "failed", "channels": [ops.pk]})
    other = rules.rule_create(data={"name": "o", "event": "failed", "channels": [ops.pk]})
    mine, theirs = open_incident(rule, "a"), open_incident(other, "a")
    rules.rule_update(rule=rule, data={"name": "renamed"})
    assert is_open(mine)
    rules.rule_update(rule=rule, data={"enabled": False})
    assert not is_open(mine)
    assert is_open(theirs)


def test_a_rule_with_another_event_closes_its_incidents(ops):
    rule = rules.rule_create(data={"name": "r", "event": "slow", "channels": [ops.pk]})
    incident = open_incident(rule, "a")
    rules.rule_update(rule=rule, data={"threshold": 1000})  # the same event, a new threshold: still open
    assert is_open(incident)
    rules.rule_update(rule=rule, data={"event": "late"})
    assert not is_open(incident)


def test_a_job_the_rule_stops_watching_has_its_incident_closed(ops):
    rule = rules.rule_create(data={"name": "r", "event": "failed", "jobs": ["a", "b"], "channels": [ops.pk]})
    a, b = open_incident(rule, "a"), open_incident(rule, "b")
    rules.rule_update(rule=rule, data={"jobs": ["a"]})
    assert (is_open(a), is_open(b)) == (True, False)
    rules.rule_update(rule=rule, data={"jobs": []})  # every job: a is still watched
    assert is_open(a)


def test_a_closed_incident_stays_as_it_was_closed(ops):
    rule = rules.rule_create(data={"name": "r", "event": "failed", "channels": [ops.pk]})
    incident = open_incident(rule, "a")
    incident.closed_at = closed_at = timezone.now() - timedelta(days=1)
    incident.save()
    rules.rule_update(rule=rule, data={"enabled": False})
    incident.refresh_from_db()
    assert incident.closed_at == closed_at


def test_a_refused_change_changes_nothing(ops):
    rule = rules.rule_create(data={"name": "r", "event": "failed", "jobs": ["a"], "channels": [ops.pk]})
    incident = open_incident(rule, "a")
    with pytest.raises(ValidationError) as refused:
        rules.rule_update(rule=rule, data={"enabled": False, "jobs": ["nope"]})
    assert "jobs" in refused.value.message_dict
    rule.refresh_from_db()
    assert rule.enabled is True
    assert is_open(incident)


def test_each_write_clears_the_cached_rules_once_it_commits(ops, django_capture_on_commit_callbacks):
    assert selectors.enabled_rules() == []
    with django_capture_on_commit_callbacks(execute=False):
        rule = rules.rule_create(data={"name": "r", "event": "failed", "channels": [ops.pk]})
    assert selectors.enabled_rules() == []  # not committed yet: the cache is still the one read before
    with django_capture_on_commit_callbacks(execute=True):
        rules.rule_update(rule=rule, data={"name": "renamed"})
    assert [(r.id, r.name) for r in selectors.enabled_rules()] == [(rule.pk, "renamed")]
    with django_capture_on_commit_callbacks(execute=True):
        rules.rule_update(rule=rule, data={"jobs": ["b"]})
    assert selectors.rules_watching("a") == []
    assert [r.id for r in selectors.rules_watching("b")] == [rule.pk]
    with django_capture_on_commit_callbacks(execute=True):
        rules.rule_update(rule=rule, data={"enabled": False})
    assert selectors.enabled_rules() == []
    rules.rule_update(rule=rule, data={"enabled": True})
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        rules.rule_delete(rule=rule)
    assert callbacks
    assert selectors.enabled_rules() == []


def test_the_admin_and_the_api_may_give_instances_or_ids(ops, jobs):
    cleaned = rules.rule_clean({"name": "r", "event": "failed", "jobs": jobs, "channels": [ops]})
    assert (cleaned["jobs"], cleaned["channels"]) == (["a", "b"], [ops.pk])
    cleaned = rules.rule_clean({"name": "r", "event": "no_success", "threshold": "600", "channels": [str(ops.pk)]})
    assert (cleaned["threshold"], cleaned["channels"]) == (600, [ops.pk])


def test_a_job_is_not_silently_added_to_a_rule_for_every_job_nor_taken_from_a_rule_for_it_alone(ops):
    every = rules.rule_create(data={"name": "every", "event": "failed", "channels": [ops.pk]})
    alone = rules.rule_create(data={"name": "alone", "event": "failed", "jobs": ["a"], "channels": [ops.pk]})
    both = rules.rule_create(data={"name": "both", "event": "failed", "jobs": ["a", "b"], "channels": [ops.pk]})
    with pytest.raises(ValidationError) as refused:
        rules.job_rules_clean(job_id="a", attach=[every.pk], detach=[alone.pk])
    assert len(refused.value.messages) == 2
    assert "'every' watches every job" in refused.value.messages[0]
    assert "'alone' watches this job alone" in refused.value.messages[1]
    rules.job_rules_clean(job_id="a", attach=[], detach=[both.pk])
    rules.job_rules_clean(job_id="b", attach=[alone.pk], detach=[])


def test_a_job_deleted_while_the_rule_is_saved_is_a_validation_error_not_a_500(monkeypatch):
    rule_services = rules
    channel = services.channel_create(data={"name": "ops", "kind": "slack", "target": "https://hooks.example.com/x"})
    job = job_services.job_create(data={"id": "gone-soon", "interval_seconds": 60, "url": "http://127.0.0.1:9/"})
    checked = rule_services.rule_clean

    def deleted_right_after_the_check(data, **kwargs):
        fields = checked(data, **kwargs)
        job_services.job_delete(job=job)
        return fields

    monkeypatch.setattr(rule_services, "rule_clean", deleted_right_after_the_check)
    with pytest.raises(ValidationError) as refused:
        rule_services.rule_create(
            data={"name": "r", "event": "failed", "jobs": ["gone-soon"], "channels": [channel.pk]}
        )
    assert "deleted while it was saved" in str(refused.value.message_dict["jobs"])
    assert not AlertRule.objects.exists()
