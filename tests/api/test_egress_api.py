"""The egress policy at save time: a literal denied host is a 400 on ``url``, by every entry point."""

from __future__ import annotations

import pytest

from jobs import services
from jobs.models import Job

pytestmark = pytest.mark.django_db

DENIED = [
    ("http://169.254.169.254/latest/meta-data/", "169.254.169.254 is a cloud metadata address"),
    ("http://[::ffff:169.254.169.254]/", "::ffff:169.254.169.254 (= 169.254.169.254) is a cloud metadata address"),
    ("http://[fd00:ec2::254]/latest/", "fd00:ec2::254 is a cloud metadata address"),
    ("http://metadata.google.internal/computeMetadata/v1/", "metadata.google.internal is a cloud metadata host name"),
    ("http://169.254.170.2/v2/credentials", "169.254.170.2 is link-local"),
]


@pytest.mark.parametrize(("url", "why"), DENIED)
def test_a_denied_literal_host_is_a_400_naming_url(api, url, why):
    answer = api.post("/api/jobs/", {"id": "ssrf", "interval_seconds": 60, "url": url}, format="json")
    assert answer.status_code == 400
    assert answer.json() == {"url": [f"Egress denied: {why} (CRONTASK_EGRESS_DENY, built in)."]}
    assert not Job.objects.exists()


def test_changing_a_job_to_a_denied_host_is_a_400_naming_url(api):
    services.job_create(data={"id": "web", "interval_seconds": 60, "url": "http://127.0.0.1:9/"})
    answer = api.patch("/api/jobs/web/", {"url": "http://[fd00:ec2::254]/"}, format="json")
    assert answer.status_code == 400
    assert list(answer.json()) == ["url"]
    assert Job.objects.get(pk="web").url == "http://127.0.0.1:9/"


def test_the_weizhi_path_refuses_a_denied_host_on_url(api):
    answer = api.post("/jobs", {"id": "w", "cron": "* * * * *", "url": "http://169.254.169.254/"}, format="json")
    assert answer.status_code == 400
    assert list(answer.json()) == ["url"]


def test_denied_loopback_is_refused_as_written_but_a_name_is_not_resolved_at_save(api, settings):
    settings.CRONTASK_EGRESS_DENY = ["127.0.0.0/8"]
    for url in ("http://127.0.0.1:9/", "http://[::ffff:127.0.0.1]:9/"):
        answer = api.post("/api/jobs/", {"id": "lo", "interval_seconds": 60, "url": url}, format="json")
        assert (answer.status_code, list(answer.json())) == (400, ["url"])
    # localhost does resolve to 127.0.0.1, but that is for the run's connection to find out.
    answer = api.post("/api/jobs/", {"id": "lo", "interval_seconds": 60, "url": "http://localhost:9/"}, format="json")
    assert answer.status_code == 201, answer.json()


def test_an_allow_list_refuses_other_literal_hosts_at_save(api, settings):
    settings.CRONTASK_EGRESS_ALLOW = ["10.0.0.0/8", "api.example.com"]
    for url, status in (("http://10.1.2.3/", 201), ("http://api.example.com/", 201), ("http://192.168.1.1/", 400)):
        answer = api.post("/api/jobs/", {"interval_seconds": 60, "url": url}, format="json")
        assert answer.status_code == status, (url, answer.json())
    assert answer.json() == {"url": ["Egress denied: 192.168.1.1 is not in CRONTASK_EGRESS_ALLOW."]}


def test_follow_redirects_is_on_by_default_and_can_be_turned_off(api):
    created = api.post("/api/jobs/", {"id": "r", "interval_seconds": 60, "url": "http://127.0.0.1:9/"}, format="json")
    assert created.json()["follow_redirects"] is True
    changed = api.patch("/api/jobs/r/", {"follow_redirects": False}, format="json")
    assert (changed.status_code, changed.json()["follow_redirects"]) == (200, False)
    assert Job.objects.get(pk="r").follow_redirects is False
    bad = api.patch("/api/jobs/r/", {"follow_redirects": "sometimes"}, format="json")
    assert (bad.status_code, list(bad.json())) == (400, ["follow_redirects"])
