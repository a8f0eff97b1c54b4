"""Alerts see a dependency run (``trigger=dependency``) as any other: its failure opens an incident."""

from __future__ import annotations

import pytest

from alerts import services
from alerts.models import AlertRule, Channel, Incident
from jobs import services as job_services
from runs.models import Run
from tests.alerts.receiver import SECRET
from tests.alerts.test_rules_engine import fire, make_rule, received

pytestmark = pytest.mark.django_db


@pytest.fixture
def channel(receiver) -> Channel:
    data = {"name": "ops hook", "kind": "webhook", "target": receiver.url + "/webhook", "secret": SECRET}
    return services.channel_create(data=data)


def test_a_failing_dependency_run_opens_an_incident_and_alerts(
    http_target, receiver, eager, channel: Channel, django_capture_on_commit_callbacks
):
    make_rule(AlertRule.Event.FAILED, [channel])
    job_services.job_create(data={"id": "load", "interval_seconds": 60, "url": http_target.url + "/"})
    job_services.job_create(
        data={"id": "report", "url": http_target.url + "/status/500", "after": [{"job": "load", "on": "success"}]}
    )
    upstream = fire(django_capture_on_commit_callbacks, 0, job_id="load")
    downstream = Run.objects.get(job_id="report")  # run by the eager worker once the outcome committed
    assert (downstream.trigger, downstream.upstream_run_id, downstream.status) == ("dependency", upstream.pk, "failed")
    incident = Incident.objects.get()
    assert (incident.job_id, incident.event, incident.first_run_id) == ("report", "failed", downstream.pk)
    assert [alert["event"] for alert in received(receiver)] == ["failed"]
