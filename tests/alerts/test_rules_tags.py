"""Alert rules aimed at tags (issue #22): a rule watches the jobs it names, the jobs with any of
its tags, or, naming neither, every job. Real fires of real HTTP jobs, alerts to the local receiver."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from alerts import evaluation, rules, selectors, services
from alerts.models import AlertRule, Channel, Incident
from alerts.sweep import check_no_success, sweep
from jobs import services as job_services
from jobs.models import Job
from runs.models import Run
from runs.tasks import execute_job
from tests.alerts.receiver import SECRET

pytestmark = pytest.mark.django_db
START = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
URL = "http://127.0.0.1:9/"


@pytest.fixture(autouse=True)
def fresh_rules():
    selectors.rules_changed()
    yield
    selectors.rules_changed()


@pytest.fixture
def hook(receiver) -> Channel:
    data = {"name": "ops hook", "kind": "webhook", "target": receiver.url + "/webhook", "secret": SECRET}
    return services.channel_create(data=data)


def fire(capture, n: int, job_id: str) -> Run:
    at = START + timedelta(minutes=n)
    with capture(execute=True):
        execute_job.apply(kwargs={"job_id": job_id, "scheduled_for": at.isoformat()}, throw=True)
    return Run.objects.get(job_id=job_id, scheduled_for=at, attempt=1)


def test_a_rule_by_tag_fires_for_a_tagged_job_and_not_for_an_untagged_one(
    http_target, receiver, eager, hook, django_capture_on_commit_callbacks
):
    failing = http_target.url + "/status/500"
    for job_id, tags in (("tagged", ["Prod", "db"]), ("untagged", []), ("other-tag", ["dev"])):
        job_services.job_create(data={"id": job_id, "interval_seconds": 60, "url": failing, "tags": tags})
    with django_capture_on_commit_callbacks(execute=True):
        rule = rules.rule_create(data={"name": "prod", "event": "failed", "tags": ["prod"], "channels": [hook.pk]})
    assert rule.tags == ["prod"]
    assert evaluation.watched("untagged")  # it may: the job's tags are weighed when its run ends
    for n, job_id in enumerate(("tagged", "untagged", "other-tag")):
        assert fire(django_capture_on_commit_callbacks, n, job_id).status == "failed"
    incident = Incident.objects.get()
    assert (incident.rule_id, incident.job_id, incident.event) == (rule.pk, "tagged", "failed")
    [alert] = [json.loads(body) for path, _h, _q, body in receiver.requests if path == "/webhook"]
    assert alert["event"] == "failed"
    assert alert["job"]["id"] == "tagged"


def test_a_rule_watches_the_jobs_it_names_those_with_its_tags_or_every_job():
    for job_id, tags in (("a", ["prod"]), ("b", ["dev"]), ("c", [])):
        job_services.job_create(data={"id": job_id, "interval_seconds": 60, "url": URL, "tags": tags})
    channel = services.channel_create(data={"name": "ops", "kind": "webhook", "target": URL})
    both = rules.rule_create(
        data={"name": "both", "event": "failed", "jobs": ["c"], "tags": ["prod"], "channels": [channel.pk]}
    )
    every = rules.rule_create(data={"name": "every", "event": "failed", "channels": [channel.pk]})
    selectors.rules_changed()

    def watching(job_id: str) -> set[int]:
        job = Job.objects.get(pk=job_id)
        return {rule.id for rule in selectors.rules_watching(job_id, tags=job.tags)}

    assert watching("a") == {both.pk, every.pk}
    assert watching("b") == {every.pk}
    assert watching("c") == {both.pk, every.pk}


def test_rule_tags_are_checked_as_a_jobs_tags_and_shown_by_the_api(api):
    channel = services.channel_create(data={"name": "ops", "kind": "webhook", "target": URL})
    body = {"name": "r", "event": "failed", "tags": ["Prod", "prod", "team:db"], "channels": [channel.pk]}
    response = api.post("/api/alert-rules/", body, format="json")
    assert response.status_code == 201, response.json()
    assert response.json()["tags"] == ["prod", "team:db"]
    assert response.json()["jobs"] == []
    response = api.patch(f"/api/alert-rules/{response.json()['id']}/", {"tags": ["no spaces"]}, format="json")
    assert response.status_code == 400
    assert list(response.json()) == ["tags"]
    assert "Not a tag: 'no spaces'" in response.json()["tags"][0]
    assert AlertRule.objects.get().tags == ["prod", "team:db"]


def test_no_success_by_tag_opens_incidents_only_for_the_tagged_jobs():
    for job_id, tags in (("tagged", ["prod"]), ("untagged", [])):
        job_services.job_create(data={"id": job_id, "interval_seconds": 60, "url": URL, "tags": tags})
    Job.objects.update(updated_at=timezone.now() - timedelta(hours=2))
    channel = services.channel_create(data={"name": "ops", "kind": "webhook", "target": URL})
    rule = rules.rule_create(
        data={"name": "quiet", "event": "no_success", "threshold": 3600, "tags": ["prod"], "channels": [channel.pk]}
    )
    [watching] = [r for r in selectors.load_enabled_rules() if r.id == rule.pk]
    assert check_no_success(watching, now=timezone.now()) == 1
    assert list(Incident.objects.values_list("job_id", flat=True)) == ["tagged"]


def test_a_rule_that_drops_a_tag_closes_the_incidents_of_the_jobs_it_no_longer_watches():
    for job_id, tags in (("a", ["prod"]), ("b", ["db"])):
        job_services.job_create(data={"id": job_id, "interval_seconds": 60, "url": URL, "tags": tags})
    channel = services.channel_create(data={"name": "ops", "kind": "webhook", "target": URL})
    rule = rules.rule_create(data={"name": "r", "event": "failed", "tags": ["prod", "db"], "channels": [channel.pk]})
    now = timezone.now()
    for job_id in ("a", "b"):
        Incident.objects.create(rule=rule, job_id=job_id, event="failed", opened_at=now, last_notified_at=now)
    rules.rule_update(rule=rule, data={"tags": ["prod"]})
    assert set(Incident.objects.filter(closed_at__isnull=True).values_list("job_id", flat=True)) == {"a"}


def test_the_admin_takes_a_rules_tags_as_text_and_lists_them(admin_client, django_capture_on_commit_callbacks):
    channel = services.channel_create(data={"name": "ops", "kind": "webhook", "target": URL})
    form = {
        "name": "r", "event": "failed", "threshold": "", "jobs": [], "tags": "prod, Team:DB",
        "channels": [channel.pk], "remind_every_seconds": "", "enabled": "on",
    }  # fmt: skip
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post("/admin/alerts/alertrule/add/", form)
    assert response.status_code == 302, response.content.decode()[:3000]
    assert AlertRule.objects.get().tags == ["prod", "team:db"]
    assert "tagged prod, team:db" in admin_client.get("/admin/alerts/alertrule/").content.decode()
    response = admin_client.post("/admin/alerts/alertrule/add/", {**form, "name": "bad", "tags": "a/b"})
    assert response.status_code == 200
    assert "Not a tag" in response.content.decode()
    job_services.job_create(data={"id": "j", "interval_seconds": 60, "url": URL, "tags": ["prod"]})
    page = admin_client.get("/admin/jobs/job/j/change/").content.decode()
    assert "Enabled rules for its tags: <a" in page


def test_the_sweep_closes_the_incidents_of_a_job_that_lost_the_rules_tags():
    for job_id, tags in (("keeps", ["prod"]), ("loses", ["prod"]), ("named", [])):
        job_services.job_create(data={"id": job_id, "interval_seconds": 60, "url": URL, "tags": tags})
    channel = services.channel_create(data={"name": "ops", "kind": "webhook", "target": URL})
    rule = rules.rule_create(
        data={"name": "r", "event": "failed", "jobs": ["named"], "tags": ["prod"], "channels": [channel.pk]}
    )
    now = timezone.now()
    for job_id in ("keeps", "loses", "named"):
        Incident.objects.create(rule=rule, job_id=job_id, event="failed", opened_at=now, last_notified_at=now)
    job_services.job_update(job=Job.objects.get(pk="loses"), data={"tags": ["dev"]})
    assert sweep().closed == 1
    assert set(Incident.objects.filter(closed_at__isnull=True).values_list("job_id", flat=True)) == {"keeps", "named"}
    assert sweep().closed == 0
