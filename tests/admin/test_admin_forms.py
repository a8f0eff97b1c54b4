"""The job form refuses what the API refuses, with the same words, and never answers 500."""

from __future__ import annotations

import html
from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.core.exceptions import ValidationError
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from jobs import preparation, services
from jobs.errors import JobAlreadyExists
from jobs.models import Job
from tests.admin.test_admin_basics import form

pytestmark = pytest.mark.django_db
URL = "http://127.0.0.1:9/"
SHELL_REFUSED = "Shell jobs need the 'Can create and change shell jobs' permission."  # the API's words


@pytest.fixture
def clerk(client, django_user_model):
    """Staff who may add and change jobs, but not shell jobs."""
    user = django_user_model.objects.create_user("clerk", password="pw-for-tests", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(codename__in=["add_job", "change_job", "view_job"]))
    client.force_login(user)
    client.user = user
    return client


def past_date() -> dict[str, str]:
    past = timezone.now() - timedelta(days=1)
    return {"trigger": "date", "cron": "", "run_at_0": f"{past:%Y-%m-%d}", "run_at_1": f"{past:%H:%M:%S}"}


def test_a_past_run_at_is_a_form_error_with_the_apis_message(staff, api):
    answer = api.post(
        "/api/jobs/", {"id": "late", "run_at": (timezone.now() - timedelta(days=1)).isoformat(), "url": URL}, "json"
    )
    assert answer.status_code == 400
    (message,) = answer.json()["run_at"]
    response = staff.post("/admin/jobs/job/add/", form(id="late", **past_date()))
    assert response.status_code == 200
    page = response.content.decode()
    assert html.escape(message) in page
    assert "errornote" in page
    assert not Job.objects.exists()
    assert not PeriodicTask.objects.exists()


def test_a_change_the_services_refuse_is_a_form_error_and_changes_nothing(staff):
    services.job_create(data={"id": "later", "interval_seconds": 60, "url": URL})
    response = staff.post("/admin/jobs/job/later/change/", form(id="later", **past_date()))
    assert response.status_code == 200
    assert "Is in the past" in response.content.decode()
    job = Job.objects.get(pk="later")
    assert (job.trigger, job.interval_seconds, job.run_at) == ("interval", 60, None)
    interval = PeriodicTask.objects.get(crontask_job=job).interval
    assert interval is not None
    assert interval.every == 60


def test_a_conflict_from_the_services_is_a_form_error(staff, monkeypatch):
    def lost_the_race(job_id):
        raise JobAlreadyExists(job_id)

    monkeypatch.setattr(preparation, "_check_id_free", lost_the_race)
    response = staff.post("/admin/jobs/job/add/", form(id="twin"))
    assert response.status_code == 200
    assert html.escape("A job with id 'twin' already exists.") in response.content.decode()


def test_a_save_the_services_refuse_after_the_form_passed_is_an_error_message_not_a_500(staff, monkeypatch):
    """The form checks the id, then the service's insert finds it taken: by a job made in between."""
    checks = []
    real = preparation._check_id_free

    def taken_meanwhile(job_id):
        checks.append(job_id)
        real(job_id)  # the form's check passes; then someone else takes the id
        services.job_create(data={"id": job_id, "interval_seconds": 60, "url": URL})

    monkeypatch.setattr(preparation, "_check_id_free", taken_meanwhile)
    response = staff.post("/admin/jobs/job/add/", form(id="twin"), follow=True)
    assert checks == ["twin"]
    assert response.redirect_chain == [("/admin/jobs/job/add/", 302)]
    assert html.escape("Nothing was saved: A job with id 'twin' already exists.") in response.content.decode()
    assert not Job.objects.exists()
    assert not PeriodicTask.objects.exists()


def test_a_change_refused_at_save_time_changes_nothing(staff, monkeypatch):
    services.job_create(data={"id": "later", "interval_seconds": 60, "url": URL})
    real = preparation.job_prepare
    calls = []

    def completed_meanwhile(**kwargs):
        calls.append(1)
        if len(calls) > 1:
            raise ValidationError({"run_at": "A completed one-off job runs again only when given a new run_at."})
        return real(**kwargs)

    monkeypatch.setattr(services, "job_prepare", completed_meanwhile)
    monkeypatch.setattr("jobs.admin.job_prepare", completed_meanwhile)
    response = staff.post(
        "/admin/jobs/job/later/change/",
        form(id="later", trigger="interval", cron="", interval_seconds="90"),
        follow=True,
    )
    assert response.redirect_chain == [("/admin/jobs/job/later/change/", 302)]
    assert "Nothing was saved: A completed one-off job runs again" in html.unescape(response.content.decode())
    assert Job.objects.get(pk="later").interval_seconds == 60


def test_a_duplicate_id_is_a_form_error_with_the_apis_message(staff):
    services.job_create(data={"id": "twin", "url": URL})
    response = staff.post("/admin/jobs/job/add/", form(id="twin"))
    assert response.status_code == 200
    assert response.context["adminform"].form.errors["id"] == ["A job with id 'twin' already exists."]


def test_staff_without_the_shell_permission_cannot_add_a_shell_job(clerk, settings):
    settings.CRONTASK_ALLOW_SHELL = True
    response = clerk.post("/admin/jobs/job/add/", form(id="sh", kind="shell", url="", command="echo hi"))
    assert response.status_code == 200
    assert html.escape(SHELL_REFUSED) in response.content.decode()
    assert not Job.objects.exists()

    clerk.user.user_permissions.add(Permission.objects.get(codename="manage_shell_jobs"))
    response = clerk.post("/admin/jobs/job/add/", form(id="sh", kind="shell", url="", command="echo hi"))
    assert response.status_code == 302, response.content.decode()[:2000]
    assert Job.objects.get(pk="sh").command == "echo hi"


def test_staff_without_the_shell_permission_cannot_change_a_shell_job(clerk, settings):
    settings.CRONTASK_ALLOW_SHELL = True
    services.job_create(data={"id": "sh", "kind": "shell", "command": "echo hi"})
    for change in ({"command": "rm -rf /tmp/x"}, {"kind": "http", "url": URL, "command": ""}):
        fields = form(id="sh", kind="shell", url="", command="echo hi", trigger="manual", cron="")
        response = clerk.post("/admin/jobs/job/sh/change/", {**fields, **change})
        assert response.status_code == 200
        assert html.escape(SHELL_REFUSED) in response.content.decode()
    job = Job.objects.get(pk="sh")
    assert (job.kind, job.command) == ("shell", "echo hi")
    # The rest of the admin is theirs as before: an http job is changed.
    services.job_create(data={"id": "web", "interval_seconds": 60, "url": URL})
    assert clerk.post("/admin/jobs/job/web/change/", form(id="web", cron="*/2 * * * *")).status_code == 302
    assert Job.objects.get(pk="web").cron == "*/2 * * * *"


def test_a_denied_host_is_a_form_error_on_url(staff):
    response = staff.post("/admin/jobs/job/add/", form(id="ssrf", url="http://[::ffff:169.254.169.254]/"))
    assert response.status_code == 200
    assert response.context["adminform"].form.errors["url"] == [
        "Egress denied: ::ffff:169.254.169.254 (= 169.254.169.254) is a cloud metadata address "
        "(CRONTASK_EGRESS_DENY, built in)."
    ]
    assert not Job.objects.filter(pk="ssrf").exists()


def test_follow_redirects_is_set_in_the_form(staff):
    fields = form(id="nofollow")
    del fields["follow_redirects"]  # an unticked box is not sent
    assert staff.post("/admin/jobs/job/add/", fields).status_code == 302
    assert Job.objects.get(pk="nofollow").follow_redirects is False
