"""Who may do what: every endpoint (API, Weizhi-compatible paths, admin) against every role.

The roles, from nothing to everything:

- ``anonymous``: no credentials;
- ``nobody``: a signed-in staff user without a single permission (staff opens the admin's door only);
- ``viewer``: may view jobs, runs, channels, alert rules, incidents, notifications and the audit trail;
- ``editor``: may view, add, change and delete jobs, channels and alert rules, but not shell jobs;
- ``sheller``: an editor who may also manage shell jobs;
- ``superuser``.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission, User
from django.test import Client
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from alerts import rules as alert_rules
from alerts import services as alert_services
from alerts.models import Incident, Notification
from audit.models import AuditEntry
from jobs import services
from jobs.models import Job
from runs.models import Run

pytestmark = pytest.mark.django_db

ROLES = ("anonymous", "nobody", "viewer", "editor", "sheller", "superuser")
ALERTS_VIEW = ["view_channel", "view_notification", "view_alertrule", "view_incident"]
ALERTS_EDIT = [
    *ALERTS_VIEW,
    *("add_channel", "change_channel", "delete_channel"),
    *("add_alertrule", "change_alertrule", "delete_alertrule"),
]
PERMISSIONS = {
    "nobody": [],
    "viewer": ["view_job", "view_run", *ALERTS_VIEW, "view_auditentry"],
    "editor": ["view_job", "view_run", "add_job", "change_job", "delete_job", *ALERTS_EDIT],
    "sheller": [
        *("view_job", "view_run", "add_job", "change_job", "delete_job", "manage_shell_jobs", "cancel_run"),
        *ALERTS_EDIT,
    ],
}
URL = "http://127.0.0.1:9/"
NEW_HTTP = {"id": "new-http", "interval_seconds": 60, "url": URL}
# No kind: a command makes a shell job (the services infer it), and the permission follows.
NEW_SHELL = {"id": "new-shell", "interval_seconds": 60, "command": "echo hi"}
WEIZHI_JOB = {"id": "wz", "cron": "*/10 * * * * *", "url": URL}
NEW_CHANNEL = {"name": "ops", "kind": "webhook", "target": URL}
NEW_RULE = {"name": "failures", "event": "failed", "jobs": ["web"], "channels": ["{channel}"]}

DENIED = 403  # SessionAuthentication comes first, so a missing login is 403 too, not 401
READ = (DENIED, DENIED, 200, 200, 200, 200)
EDIT = (DENIED, DENIED, DENIED)
# The audit trail needs its own view permission: the editors here may change jobs but not read it.
AUDIT_READ = (DENIED, DENIED, 200, DENIED, DENIED, 200)
NO_WRITE = (DENIED, DENIED, DENIED, DENIED, DENIED, 405)  # read-only: only the superuser gets past the permission
# (method, path, body, the status for each role in the order of ROLES). "{run}" is a run's id.
API_MATRIX: list[tuple[str, str, Any, tuple[int, ...]]] = [
    ("get", "/api/jobs/", None, READ),
    ("get", "/api/jobs/web/", None, READ),
    ("get", "/api/jobs/web/runs/", None, READ),
    ("get", "/api/runs/", None, READ),
    ("get", "/api/runs/{run}/", None, READ),
    ("get", "/api/handlers/", None, READ),
    ("get", "/api/cron/preview/?expr=*/5+*+*+*+*", None, (DENIED, 200, 200, 200, 200, 200)),
    ("post", "/api/jobs/", NEW_HTTP, (*EDIT, 201, 201, 201)),
    ("post", "/api/jobs/", NEW_SHELL, (*EDIT, DENIED, 201, 201)),
    ("patch", "/api/jobs/web/", {"name": "renamed"}, (*EDIT, 200, 200, 200)),
    ("patch", "/api/jobs/sh/", {"name": "renamed"}, (*EDIT, DENIED, 200, 200)),
    ("patch", "/api/jobs/web/", {"kind": "shell", "url": "", "command": "id"}, (*EDIT, DENIED, 200, 200)),
    ("post", "/api/jobs/web/pause/", None, (*EDIT, 200, 200, 200)),
    ("post", "/api/jobs/sh/resume/", None, (*EDIT, DENIED, 200, 200)),
    ("post", "/api/jobs/web/run/", None, (*EDIT, 202, 202, 202)),
    ("post", "/api/jobs/sh/run/", None, (*EDIT, DENIED, 202, 202)),
    ("post", "/api/jobs/web/clone/", {"id": "web-copy"}, (*EDIT, 201, 201, 201)),
    ("post", "/api/jobs/sh/clone/", {"id": "sh-copy"}, (*EDIT, DENIED, 201, 201)),
    ("post", "/api/runs/{run}/rerun/", None, (*EDIT, 202, 202, 202)),
    # The run has ended: 409 once the permission (runs.cancel_run: the shell role has it) lets it through.
    ("post", "/api/runs/{run}/cancel/", None, (*EDIT, DENIED, 409, 409)),
    ("delete", "/api/jobs/web/", None, (*EDIT, 204, 204, 204)),
    # Versions (jobs.versions): read as jobs; a revert is a change (and a shell job's needs the
    # shell permission); a restore is an add. "gone" is a deleted job.
    ("get", "/api/jobs/web/versions/", None, READ),
    ("get", "/api/jobs/web/versions/1/", None, READ),
    ("get", "/api/jobs/gone/versions/", None, READ),
    ("post", "/api/jobs/web/versions/1/revert/", {}, (*EDIT, 200, 200, 200)),
    ("post", "/api/jobs/sh/versions/1/revert/", {}, (*EDIT, DENIED, 200, 200)),
    ("post", "/api/jobs/restore/", {"id": "gone"}, (*EDIT, 201, 201, 201)),
    # Alert channels and notifications: their models' permissions.
    ("get", "/api/channels/", None, READ),
    ("get", "/api/channels/{channel}/", None, READ),
    ("post", "/api/channels/", NEW_CHANNEL, (*EDIT, 201, 201, 201)),
    ("patch", "/api/channels/{channel}/", {"name": "renamed"}, (*EDIT, 200, 200, 200)),
    ("post", "/api/channels/{channel}/test/", None, (*EDIT, 200, 200, 200)),
    ("delete", "/api/channels/{channel}/", None, (*EDIT, 204, 204, 204)),
    ("get", "/api/notifications/", None, READ),
    ("get", "/api/notifications/{notification}/", None, READ),
    ("delete", "/api/notifications/{notification}/", None, (*EDIT, DENIED, DENIED, 405)),  # nobody may delete
    # Alert rules: their model's permissions; incidents: read-only.
    ("get", "/api/alert-rules/", None, READ),
    ("get", "/api/alert-rules/{rule}/", None, READ),
    ("post", "/api/alert-rules/", NEW_RULE, (*EDIT, 201, 201, 201)),
    ("patch", "/api/alert-rules/{rule}/", {"enabled": False}, (*EDIT, 200, 200, 200)),
    ("delete", "/api/alert-rules/{rule}/", None, (*EDIT, 204, 204, 204)),
    ("get", "/api/incidents/", None, READ),
    ("get", "/api/incidents/{incident}/", None, READ),
    ("delete", "/api/incidents/{incident}/", None, (*EDIT, DENIED, DENIED, 405)),
    # The audit trail: read-only, its own view permission.
    ("get", "/api/audit/", None, AUDIT_READ),
    ("get", "/api/audit/{audit}/", None, AUDIT_READ),
    ("post", "/api/audit/", {"action": "create"}, NO_WRITE),
    ("patch", "/api/audit/{audit}/", {"actor": "x"}, NO_WRITE),
    ("delete", "/api/audit/{audit}/", None, NO_WRITE),
    # The Weizhi-compatible paths: the same permissions.
    ("get", "/jobs/web", None, READ),
    ("get", "/jobs/web/runs", None, READ),
    ("post", "/jobs", WEIZHI_JOB, (*EDIT, 200, 200, 200)),
    ("delete", "/jobs/web", None, (*EDIT, 200, 200, 200)),
]
ADMIN_READ = (302, DENIED, 200, 200, 200, 200)  # anonymous: to the login page
ADMIN_MATRIX: dict[str, tuple[int, ...]] = {
    "/admin/jobs/job/": ADMIN_READ,
    "/admin/jobs/job/web/change/": ADMIN_READ,
    "/admin/jobs/job/sh/change/": ADMIN_READ,
    "/admin/runs/run/": ADMIN_READ,
    "/admin/runs/run/{run}/change/": ADMIN_READ,
    "/admin/dashboard/": ADMIN_READ,
    "/admin/jobs/job/web/history/": ADMIN_READ,
    "/admin/jobs/job/gone/history/": ADMIN_READ,
    "/admin/jobs/job/deleted/": ADMIN_READ,
    "/admin/jobs/job/add/": (302, DENIED, DENIED, 200, 200, 200),
    "/admin/jobs/job/add/?clone=web": (302, DENIED, DENIED, 200, 200, 200),
    "/admin/alerts/channel/": ADMIN_READ,
    "/admin/alerts/channel/{channel}/change/": ADMIN_READ,
    "/admin/alerts/channel/add/": (302, DENIED, DENIED, 200, 200, 200),
    "/admin/alerts/notification/": ADMIN_READ,
    "/admin/alerts/notification/{notification}/change/": ADMIN_READ,
    "/admin/alerts/alertrule/": ADMIN_READ,
    "/admin/alerts/alertrule/{rule}/change/": ADMIN_READ,
    "/admin/alerts/alertrule/add/": (302, DENIED, DENIED, 200, 200, 200),
    "/admin/alerts/incident/": ADMIN_READ,
    "/admin/alerts/incident/{incident}/change/": ADMIN_READ,
    "/admin/alerts/incident/add/": (302, DENIED, DENIED, DENIED, DENIED, DENIED),
    "/admin/audit/auditentry/": (302, DENIED, 200, DENIED, DENIED, 200),
    "/admin/audit/auditentry/{audit}/change/": (302, DENIED, 200, DENIED, DENIED, 200),
    "/admin/audit/auditentry/add/": (302, DENIED, DENIED, DENIED, DENIED, DENIED),
    "/admin/audit/auditentry/{audit}/delete/": (302, DENIED, DENIED, DENIED, DENIED, DENIED),
}


@pytest.fixture
def world(settings) -> dict[str, Any]:
    settings.CRONTASK_ALLOW_SHELL = True
    web = services.job_create(data={"id": "web", "interval_seconds": 60, "url": URL})
    services.job_create(data={"id": "sh", "interval_seconds": 60, "command": "echo hi", "status": "paused"})
    services.job_delete(job=services.job_create(data={"id": "gone", "interval_seconds": 60, "url": URL}))
    run = Run.objects.create(job=web, trigger=Run.Trigger.MANUAL, status=Run.Status.SUCCESS)
    channel = alert_services.channel_create(data={"name": "ops", "kind": "webhook", "target": URL})
    notification = Notification.objects.create(channel=channel, job=web, run=run, event="failed", message="m")
    rule = alert_rules.rule_create(data={"name": "ops", "event": "failed", "channels": [channel.pk]})
    incident = Incident.objects.create(
        rule=rule, job=web, event="failed", opened_at=timezone.now(), last_notified_at=timezone.now()
    )
    return {
        "run": run.pk,
        "channel": channel.pk,
        "notification": notification.pk,
        "rule": rule.pk,
        "incident": incident.pk,
        "audit": AuditEntry.objects.latest("id").pk,  # the jobs' creates above
    }


def user_for(role: str) -> User | None:
    users = get_user_model().objects
    if role == "anonymous":
        return None
    if role == "superuser":
        return users.create_superuser(role, "", None)  # no password: nothing to hash
    user = users.create_user(role, password=None, is_staff=True)
    user.user_permissions.set(Permission.objects.filter(codename__in=PERMISSIONS[role]))
    return user


def api_client(role: str) -> APIClient:
    client = APIClient()
    user = user_for(role)
    if user is not None:
        client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return client


def admin_client(role: str) -> Client:
    client = Client()
    user = user_for(role)
    if user is not None:
        client.force_login(user)
    return client


def filled(body: Any, world: dict[str, Any]) -> Any:
    """``body`` with the ids of ``world`` in place of "{channel}" and the like."""
    if isinstance(body, dict):
        return {key: filled(value, world) for key, value in body.items()}
    if isinstance(body, list):
        return [filled(value, world) for value in body]
    return body.format(**world) if isinstance(body, str) else body


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize(
    ("method", "path", "body", "expected"), API_MATRIX, ids=[f"{m} {p}" for m, p, *_ in API_MATRIX]
)
def test_the_api_answers_each_role_as_the_matrix_says(world, role, method, path, body, expected):
    expected = expected[ROLES.index(role)]
    response = getattr(api_client(role), method)(path.format(**world), filled(body, world), format="json")
    assert response.status_code == expected, response.content


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("path", list(ADMIN_MATRIX))
def test_the_admin_answers_each_role_as_the_matrix_says(world, role, path):
    response = admin_client(role).get(path.format(**world))
    assert response.status_code == ADMIN_MATRIX[path][ROLES.index(role)]


def test_a_refused_write_changes_nothing(world):
    client = api_client("editor")
    client.post("/api/jobs/", NEW_SHELL, format="json")
    client.patch("/api/jobs/web/", {"kind": "shell", "url": "", "command": "id"}, format="json")
    client.post("/api/jobs/sh/run/")
    client.post("/api/jobs/sh/resume/")
    assert list(Job.objects.order_by("id").values_list("id", "kind", "status")) == [
        ("sh", "shell", "paused"),
        ("web", "http", "active"),
    ]
    assert not Run.objects.filter(job_id="sh").exists()


def test_the_refusal_says_which_permission_is_missing(world):
    response = api_client("editor").post("/api/jobs/", NEW_SHELL, format="json")
    assert response.json() == {"detail": "Shell jobs need the 'Can create and change shell jobs' permission."}


@pytest.mark.parametrize(("role", "ran"), [("editor", False), ("sheller", True)])
def test_bulk_run_and_resume_of_a_shell_job_need_the_shell_permission(world, role, ran):
    client = api_client(role)
    for action in ("run", "resume"):
        response = client.post("/api/jobs/bulk/", {"action": action, "ids": ["sh", "web"]}, format="json")
        assert response.status_code == 200
        results = {r["id"]: r["ok"] for r in response.json()["results"]}
        assert results == {"sh": ran, "web": True}
    assert Run.objects.filter(job_id="sh").exists() is ran
    assert Job.objects.get(pk="sh").status == ("active" if ran else "paused")


@pytest.mark.parametrize(("role", "ran"), [("editor", False), ("sheller", True)])
def test_the_admins_run_now_run_again_and_resume_of_a_shell_job_need_the_shell_permission(world, role, ran):
    client = admin_client(role)
    shell_run = Run.objects.create(job_id="sh", trigger=Run.Trigger.MANUAL, status=Run.Status.SUCCESS)
    client.post("/admin/jobs/job/sh/run-now/")
    client.post("/admin/jobs/job/", {"action": "run_jobs_now", "_selected_action": ["sh"]})
    client.post(f"/admin/runs/run/{shell_run.pk}/run-again/")
    client.post("/admin/jobs/job/", {"action": "resume_jobs", "_selected_action": ["sh"]})
    assert Run.objects.filter(job_id="sh").exclude(pk=shell_run.pk).count() == (3 if ran else 0)
    assert Job.objects.get(pk="sh").status == ("active" if ran else "paused")


@pytest.mark.parametrize(("role", "allowed"), [("viewer", False), ("editor", True)])
def test_the_admins_revert_and_restore_buttons_need_change_and_add(world, role, allowed):
    services.job_update(job=Job.objects.get(pk="web"), data={"interval_seconds": 90})
    client = admin_client(role)
    reverted = client.post("/admin/jobs/job/web/versions/1/revert/")
    restored = client.post("/admin/jobs/job/deleted/", {"id": "gone"})
    assert (reverted.status_code, restored.status_code) == ((302, 302) if allowed else (DENIED, DENIED))
    assert Job.objects.get(pk="web").interval_seconds == (60 if allowed else 90)
    assert Job.objects.filter(pk="gone").exists() is allowed
    shell = client.post("/admin/jobs/job/sh/versions/1/revert/", follow=True)
    if allowed:  # an editor may change jobs, not shell jobs: the service refuses, the page says so
        assert "Shell jobs need the" in shell.content.decode()


def test_the_admin_shows_the_refusal(world):
    response = admin_client("editor").post(
        "/admin/jobs/job/", {"action": "run_jobs_now", "_selected_action": ["sh"]}, follow=True
    )
    assert "Shell jobs need the" in response.content.decode()


@pytest.mark.parametrize("open_api", [False, True])
def test_anonymous_api_access_opens_the_weizhi_reads_and_nothing_else(world, settings, open_api):
    settings.CRONTASK_ALLOW_ANONYMOUS_API = open_api
    client = APIClient()
    weizhi_reads = 200 if open_api else DENIED
    assert client.get("/jobs/web").status_code == weizhi_reads
    assert client.get("/jobs/web/runs").status_code == weizhi_reads
    assert client.post("/jobs", WEIZHI_JOB, format="json").status_code == DENIED
    assert client.delete("/jobs/web").status_code == DENIED
    assert client.get("/api/jobs/").status_code == DENIED
    assert client.get("/api/runs/").status_code == DENIED
    assert client.post("/api/jobs/", NEW_HTTP, format="json").status_code == DENIED
    assert client.post("/api/jobs/web/run/").status_code == DENIED
    assert list(Job.objects.order_by("id").values_list("id", flat=True)) == ["sh", "web"]


def test_a_job_page_shows_its_runs_only_to_those_who_may_view_runs(world):
    user = get_user_model().objects.create_user("jobs-only", password=None, is_staff=True)
    user.user_permissions.set(Permission.objects.filter(codename="view_job"))
    client = Client()
    client.force_login(user)
    page = client.get("/admin/jobs/job/web/change/").content.decode()
    assert '<table class="ct-recent-runs">' not in page
    viewer_page = admin_client("viewer").get("/admin/jobs/job/web/change/").content.decode()
    assert '<table class="ct-recent-runs">' in viewer_page


def test_the_job_page_offers_its_buttons_only_to_those_who_may_use_them(world):
    viewer, editor = admin_client("viewer"), admin_client("editor")
    viewer_page = viewer.get("/admin/jobs/job/web/change/").content.decode()
    editor_page = editor.get("/admin/jobs/job/web/change/").content.decode()
    for button in ('id="ct-run-now"', 'id="ct-pause"', 'id="ct-clone"'):
        assert button not in viewer_page
        assert button in editor_page
    run_page = "/admin/runs/run/{run}/change/".format(**world)
    assert 'id="ct-run-again"' not in viewer.get(run_page).content.decode()
    assert 'id="ct-run-again"' in editor.get(run_page).content.decode()
