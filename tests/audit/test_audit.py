"""The audit trail: each action recorded once, with who, through what and from where; nothing
for a change rolled back; refused writes recorded; entries append-only; read through the API
and the admin; pruned by age."""

from __future__ import annotations

import io
import json
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.db import transaction
from django.test import Client
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from audit.models import AppendOnly, AuditEntry
from audit.services import audit_prune, audit_record
from core import origin
from jobs import services
from jobs.models import Job
from runs import cancellation, enqueue
from runs.models import Run
from tests.admin.test_admin_basics import form

pytestmark = pytest.mark.django_db

URL = "http://127.0.0.1:9/"
HTTP_JOB = {"id": "web", "interval_seconds": 60, "url": URL}


def entries(**filters) -> list[tuple[str, str, str, str]]:
    """(action, actor, source, job_id) of the entries, oldest first."""
    rows = AuditEntry.objects.filter(**filters).order_by("id")
    return list(rows.values_list("action", "actor", "source", "job_id"))


def client_for(perms: list[str], name: str = "ed") -> APIClient:
    user = get_user_model().objects.create_user(name, password=None, is_staff=True)
    user.user_permissions.set(Permission.objects.filter(codename__in=perms))
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return client


@pytest.fixture
def web(db) -> Job:
    job = services.job_create(data=HTTP_JOB)
    AuditEntry.objects.all()._raw_delete(AuditEntry.objects.db)  # start each test with an empty trail
    return job


def test_api_writes_are_recorded_once_each_with_the_user_the_source_and_the_client_address(api, queued_tasks):
    assert api.post("/api/jobs/", HTTP_JOB, format="json", REMOTE_ADDR="10.1.2.3").status_code == 201
    assert api.patch("/api/jobs/web/", {"name": "Web", "interval_seconds": 120}, format="json").status_code == 200
    assert api.post("/api/jobs/web/pause/").status_code == 200
    assert api.post("/api/jobs/web/pause/").status_code == 200  # already paused: no action
    assert api.post("/api/jobs/web/resume/").status_code == 200
    run = api.post("/api/jobs/web/run/").json()
    assert api.post(f"/api/runs/{run['id']}/cancel/").status_code == 200
    assert api.post("/api/jobs/web/clone/", {"id": "web-copy"}, format="json").status_code == 201
    assert api.delete("/api/jobs/web/").status_code == 204

    assert entries() == [
        ("create", "root", "api", "web"),
        ("update", "root", "api", "web"),
        ("pause", "root", "api", "web"),
        ("resume", "root", "api", "web"),
        ("run_now", "root", "api", "web"),
        ("cancel", "root", "api", "web"),
        ("create", "root", "api", "web-copy"),
        ("delete", "root", "api", "web"),
    ]
    first = AuditEntry.objects.order_by("id")[0]
    assert first.client_ip == "10.1.2.3"
    assert set(AuditEntry.objects.exclude(pk=first.pk).values_list("client_ip", flat=True)) == {"127.0.0.1"}
    assert AuditEntry.objects.get(action="update").details == {"fields": ["name", "interval_seconds"]}
    assert AuditEntry.objects.get(action="run_now").run_id == run["id"]
    assert AuditEntry.objects.get(action="cancel").run_id == run["id"]
    assert AuditEntry.objects.get(job_id="web-copy").details == {"clone_of": "web"}


def test_an_update_names_the_changed_fields_never_their_values(api):
    api.post("/api/jobs/", {**HTTP_JOB, "headers": {"Authorization": "Bearer one"}}, format="json")
    api.patch("/api/jobs/web/", {"headers": {"Authorization": "Bearer two-secret"}}, format="json")
    entry = AuditEntry.objects.get(action="update")
    assert entry.details == {"fields": ["headers"]}
    assert "secret" not in json.dumps(list(AuditEntry.objects.values("details")))


def test_a_save_with_no_change_records_nothing(api, web):
    assert api.patch("/api/jobs/web/", {"interval_seconds": 60}, format="json").status_code == 200
    assert entries() == []


def test_the_change_reason_header_is_kept(api, web):
    api.post("/api/jobs/web/pause/", HTTP_X_CHANGE_REASON="maintenance window")
    assert AuditEntry.objects.get().reason == "maintenance window"


def test_run_again_is_a_run_now_that_names_the_run_it_repeats(api, web, queued_tasks):
    first = Run.objects.create(job=web, trigger=Run.Trigger.MANUAL, status=Run.Status.SUCCESS)
    again = api.post(f"/api/runs/{first.pk}/rerun/").json()
    entry = AuditEntry.objects.get()
    assert (entry.action, entry.run_id, entry.details) == ("run_now", again["id"], {"rerun_of": first.pk})


def test_a_bulk_action_records_each_job_and_one_summary(api, web):
    response = api.post("/api/jobs/bulk/", {"action": "pause", "ids": ["web", "nope"]}, format="json")
    assert response.status_code == 200
    assert entries() == [("pause", "root", "api", "web"), ("bulk", "root", "api", "")]
    assert AuditEntry.objects.get(action="pause").details == {"bulk": "pause"}
    assert AuditEntry.objects.get(action="bulk").details == {
        "action": "pause",
        "results": [{"id": "web", "ok": True, "error": None}, {"id": "nope", "ok": False, "error": "Not found."}],
    }


def test_the_weizhi_paths_are_their_own_source(api):
    assert api.post("/jobs", {"id": "wz", "cron": "*/10 * * * * *", "url": URL}, format="json").status_code == 200
    assert entries() == [("create", "root", "weizhi", "wz")]


def test_admin_actions_are_recorded_as_the_admin(admin_user, web):
    client = Client()
    client.force_login(admin_user)
    client.post("/admin/jobs/job/", {"action": "pause_jobs", "_selected_action": ["web"]}, REMOTE_ADDR="10.9.9.9")
    assert entries() == [("pause", "root", "admin", "web"), ("bulk", "root", "admin", "")]
    assert {entry.client_ip for entry in AuditEntry.objects.all()} == {"10.9.9.9"}
    client.post("/admin/jobs/job/web/resume/", REMOTE_ADDR="10.9.9.9")  # the page's button: one job, no bulk
    assert entries()[2:] == [("resume", "root", "admin", "web")]


def test_an_admin_bulk_action_records_each_job_and_one_summary_as_the_api_does(admin_user, web):
    services.job_create(data={**HTTP_JOB, "id": "other"})
    services.job_pause(job=Job.objects.get(pk="other"))
    AuditEntry.objects.all()._raw_delete(AuditEntry.objects.db)
    client = Client()
    client.force_login(admin_user)
    client.post("/admin/jobs/job/", {"action": "pause_jobs", "_selected_action": ["web", "other"]})
    assert entries() == [("pause", "root", "admin", "web"), ("bulk", "root", "admin", "")]
    assert AuditEntry.objects.get(action="pause").details == {"bulk": "pause"}
    summary = AuditEntry.objects.get(action="bulk").details
    assert summary["action"] == "pause"
    assert sorted(summary["results"], key=lambda r: r["id"]) == [
        {"id": "other", "ok": False, "error": "already paused"},
        {"id": "web", "ok": True},
    ]


def test_writes_the_admin_refuses_for_a_permission_are_recorded_whatever_page_says_so(settings, db):
    """The admin tells the user in a message, not a 403: a shell job resumed, run by its page's
    button, or saved by a user without the shell permission is still a refused write."""
    settings.CRONTASK_ALLOW_SHELL = True
    shell = services.job_create(data={"id": "sh", "kind": "shell", "command": "true", "interval_seconds": 60})
    services.job_pause(job=shell)
    AuditEntry.objects.all()._raw_delete(AuditEntry.objects.db)
    editor = get_user_model().objects.create_user("ed", password=None, is_staff=True)
    editor.user_permissions.set(Permission.objects.filter(codename__in=["view_job", "change_job", "add_job"]))
    client = Client()
    client.force_login(editor)

    client.post("/admin/jobs/job/", {"action": "resume_jobs", "_selected_action": ["sh"]})
    assert Job.objects.get(pk="sh").status == Job.Status.PAUSED
    assert entries() == [("permission_denied", "ed", "admin", ""), ("bulk", "ed", "admin", "")]
    assert "Shell jobs need" in AuditEntry.objects.get(action="permission_denied").details["permission"]

    client.post("/admin/jobs/job/sh/resume/")
    client.post("/admin/jobs/job/add/", form(id="new-sh", kind="shell", command="id", url=""))
    assert not Job.objects.filter(pk="new-sh").exists()
    refused = AuditEntry.objects.filter(action="permission_denied").order_by("id")
    assert [entry.details["path"] for entry in refused] == [
        "/admin/jobs/job/",
        "/admin/jobs/job/sh/resume/",
        "/admin/jobs/job/add/",
    ]


def test_a_button_the_user_may_not_use_is_recorded(db, web):
    viewer = get_user_model().objects.create_user("looker", password=None, is_staff=True)
    viewer.user_permissions.set(Permission.objects.filter(codename="view_job"))
    client = Client()
    client.force_login(viewer)
    client.post("/admin/jobs/job/web/pause/")
    client.post("/admin/jobs/job/web/run-now/")
    assert Job.objects.get(pk="web").status == Job.Status.ACTIVE
    assert not Run.objects.exists()
    assert entries() == [("permission_denied", "looker", "admin", "")] * 2


def test_run_job_is_recorded_as_a_run_now_by_the_command(web, http_target):
    services.job_update(job=web, data={"url": f"{http_target.url}/ok"})
    AuditEntry.objects.all()._raw_delete(AuditEntry.objects.db)
    call_command("run_job", "web", stdout=io.StringIO())
    run = Run.objects.get(job_id="web")
    assert entries() == [("run_now", "command", "command", "web")]
    entry = AuditEntry.objects.get()
    assert (entry.run_id, entry.details) == (run.pk, {"foreground": True})


def test_the_daily_cleanup_prunes_the_audit_trail_too(settings, db):
    from runs.retention import run_cleanup

    settings.CRONTASK_AUDIT_RETENTION_DAYS = 30
    AuditEntry.objects.create(action="pause", actor="system", source="system", at=timezone.now() - timedelta(days=31))
    kept = audit_record(action="create", job_id="b")
    assert run_cleanup()["audit_deleted"] == 1
    assert list(AuditEntry.objects.values_list("pk", flat=True)) == [kept.pk]


def test_the_admin_form_records_a_create_and_an_update_once_each(admin_user):
    client = Client()
    client.force_login(admin_user)
    assert client.post("/admin/jobs/job/add/", form(id="adm")).status_code == 302
    assert client.post("/admin/jobs/job/adm/change/", form(id="adm", cron="*/2 * * * *")).status_code == 302
    assert client.post("/admin/jobs/job/adm/change/", form(id="adm", cron="*/2 * * * *")).status_code == 302
    assert entries() == [("create", "root", "admin", "adm"), ("update", "root", "admin", "adm")]
    assert AuditEntry.objects.get(action="update").details == {"fields": ["cron"]}


def test_an_import_is_recorded_as_the_import(tmp_path, web):
    path = tmp_path / "jobs.json"
    path.write_text(json.dumps([{**HTTP_JOB, "name": "Imported"}, {"id": "new", "interval_seconds": 5, "url": URL}]))
    call_command("import_jobs", str(path), stdout=io.StringIO())
    # (new jobs go through the bulk path first, then the updates: each job's entry, in any order)
    assert sorted(entries()) == [("create", "import", "import", "new"), ("update", "import", "import", "web")]
    assert set(AuditEntry.objects.values_list("client_ip", flat=True)) == {None}


def test_services_outside_a_request_or_command_are_the_system(web, queued_tasks):
    services.job_pause(job=web)
    with origin.origin("command"):
        enqueue.job_run_now(job=web)
        running = Run.objects.create(job=web, trigger=Run.Trigger.MANUAL, status=Run.Status.RUNNING)
        cancellation.run_cancel(run=running)
        cancellation.run_cancel(run=running)  # asked already: no new action
    assert entries() == [("pause", "system", "system", "web"), ("run_now", "command", "command", "web"),
                         ("cancel", "command", "command", "web")]  # fmt: skip
    assert AuditEntry.objects.get(action="cancel").run_id == running.pk


def test_a_change_rolled_back_leaves_no_entry(web):
    class Boom(Exception):
        pass

    def pause_then_fail() -> None:
        with transaction.atomic():
            services.job_pause(job=web)
            raise Boom

    with pytest.raises(Boom):
        pause_then_fail()
    with pytest.raises(ValidationError):  # refused by validation: nothing changed
        services.job_update(job=web, data={"interval_seconds": -5})
    assert entries() == []
    assert Job.objects.get(pk="web").status == Job.Status.ACTIVE


def test_a_refused_write_is_recorded_with_the_permission_it_lacked(web):
    viewer = client_for(["view_job"], "viewer")
    assert viewer.post("/api/jobs/web/pause/", REMOTE_ADDR="10.0.0.7").status_code == 403
    assert viewer.get("/api/jobs/").status_code == 200  # a read is no write
    entry = AuditEntry.objects.get()
    assert (entry.action, entry.actor, entry.source) == ("permission_denied", "viewer", "api")
    assert entry.client_ip == "10.0.0.7"
    assert entry.details == {"method": "POST", "path": "/api/jobs/web/pause/", "permission": "jobs.change_job"}


def test_a_service_refusal_is_recorded_with_its_reason_and_changes_nothing(settings, web):
    settings.CRONTASK_ALLOW_SHELL = True
    editor = client_for(["view_job", "add_job", "change_job"])
    body = {"kind": "shell", "url": "", "command": "id"}
    assert editor.patch("/api/jobs/web/", body, format="json").status_code == 403
    assert entries() == [("permission_denied", "ed", "api", "")]  # and no update: it rolled back
    assert "Shell jobs need" in AuditEntry.objects.get().details["permission"]


def test_an_anonymous_refusal_is_not_recorded(web):
    assert APIClient().post("/api/jobs/web/pause/").status_code == 403
    assert entries() == []


def test_entries_are_append_only(db):
    entry = audit_record(action="create", job_id="x")
    entry.actor = "someone else"
    with pytest.raises(AppendOnly):
        entry.save()
    with pytest.raises(AppendOnly):
        entry.delete()
    with pytest.raises(AppendOnly):
        AuditEntry.objects.filter(pk=entry.pk).update(actor="someone else")
    with pytest.raises(AppendOnly):
        AuditEntry.objects.filter(pk=entry.pk).delete()
    assert AuditEntry.objects.get().actor == "system"


def test_the_api_lists_filters_and_shows_entries(api, web):
    with origin.origin("command"):
        audit_record(action="pause", job_id="web")
        audit_record(action="resume", job_id="other")
    old = audit_record(action="create", job_id="web")
    AuditEntry.objects.filter(pk=old.pk)._raw_delete(AuditEntry.objects.db)  # (re-added, a year back, below)
    AuditEntry.objects.create(action="create", actor="ann", source="api", job_id="web",
                              at=timezone.now() - timedelta(days=365))  # fmt: skip

    def listed(query: str) -> list[str]:
        response = api.get(f"/api/audit/{query}")
        assert response.status_code == 200, response.content
        return [row["action"] for row in response.json()["results"]]

    assert listed("") == ["resume", "pause", "create"]  # newest first
    assert listed("?job=web") == ["pause", "create"]
    assert listed("?actor=ann") == ["create"]
    assert listed("?action=resume") == ["resume"]
    assert listed("?source=command") == ["resume", "pause"]
    day_ago = (timezone.now() - timedelta(days=1)).isoformat()
    assert listed(f"?at_after={day_ago.replace('+', '%2B')}") == ["resume", "pause"]
    assert listed(f"?at_before={day_ago.replace('+', '%2B')}") == ["create"]
    assert api.get("/api/audit/?at_after=nonsense").status_code == 400
    one = AuditEntry.objects.get(action="pause")
    shown = api.get(f"/api/audit/{one.pk}/").json()
    assert shown == {
        "id": one.pk, "at": shown["at"], "actor": "command", "action": "pause", "job": "web", "run": None,
        "source": "command", "client_ip": None, "reason": "", "details": {},
    }  # fmt: skip
    assert api.post("/api/audit/", {}, format="json").status_code == 405
    assert api.delete(f"/api/audit/{one.pk}/").status_code == 405


def test_reading_the_trail_needs_its_view_permission(web):
    assert client_for(["view_job", "view_run"]).get("/api/audit/").status_code == 403
    assert client_for(["view_auditentry"], "auditor").get("/api/audit/").status_code == 200


def test_the_admin_list_is_read_only(admin_user, web):
    entry = audit_record(action="pause", job_id="web")
    client = Client()
    client.force_login(admin_user)
    assert client.get("/admin/audit/auditentry/?action=pause&q=web").status_code == 200
    page = client.get(f"/admin/audit/auditentry/{entry.pk}/change/")
    assert page.status_code == 200
    assert b'name="_save"' not in page.content
    assert client.get("/admin/audit/auditentry/add/").status_code == 403
    assert client.post(f"/admin/audit/auditentry/{entry.pk}/delete/", {"post": "yes"}).status_code == 403
    assert client.post(f"/admin/audit/auditentry/{entry.pk}/change/", {"actor": "x"}).status_code == 403
    assert AuditEntry.objects.get(pk=entry.pk).actor == "system"


def test_prune_removes_only_entries_older_than_the_retention(settings, db):
    settings.CRONTASK_AUDIT_RETENTION_DAYS = 30
    now = timezone.now()
    for days in (400, 31, 29, 0):
        AuditEntry.objects.create(action="pause", actor="system", source="system", at=now - timedelta(days=days))
    out = io.StringIO()
    call_command("prune_audit", "--older-than-days", "100", stdout=out)
    assert out.getvalue() == "Pruned 1 audit entries older than 100 days.\n"
    assert audit_prune() == 1  # the setting's 30 days
    assert AuditEntry.objects.count() == 2
    with pytest.raises(CommandError):
        call_command("prune_audit", "--older-than-days", "0")
    with pytest.raises(CommandError):
        call_command("prune_audit", "--older-than-days", "x")


def test_a_revert_and_a_restore_are_in_the_audit_trail_with_their_version(api):
    from audit.models import AuditEntry

    assert api.post("/api/jobs/", {"id": "rv", "url": "http://127.0.0.1:9/a"}, format="json").status_code == 201
    assert api.patch("/api/jobs/rv/", {"url": "http://127.0.0.1:9/b"}, format="json").status_code == 200
    assert api.post("/api/jobs/rv/versions/1/revert/", {}, format="json").status_code == 200
    assert api.delete("/api/jobs/rv/").status_code == 204
    assert api.post("/api/jobs/restore/", {"id": "rv"}, format="json").status_code in (200, 201)
    entries = list(AuditEntry.objects.filter(job_id="rv").order_by("id").values_list("action", "details"))
    actions = [action for action, _ in entries]
    assert actions == ["create", "update", "revert", "delete", "restore"]
    assert entries[2][1] == {"version": 3}
    assert entries[4][1] == {"version": 5}


def test_a_write_the_admin_refuses_is_recorded(client):
    from django.contrib.auth.models import Permission, User

    from audit.models import AuditEntry
    from jobs import services as job_services

    job_services.job_create(data={"id": "guarded", "url": "http://127.0.0.1:9/"})
    viewer = User.objects.create_user("looker", password="x", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_job"))
    client.force_login(viewer)
    assert client.post("/admin/jobs/job/guarded/delete/", {"post": "yes"}).status_code == 403
    entry = AuditEntry.objects.get(action="permission_denied")
    assert (entry.actor, entry.source) == ("looker", "admin")
    assert entry.details["path"] == "/admin/jobs/job/guarded/delete/"
