"""Versions of a job's definition (issue 21): one per change from every entry point, with who and
through what; none for a save that changes nothing; revert and restore; secrets masked when shown."""

from __future__ import annotations

import json
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from jobs import services
from jobs.models import VERSIONED_FIELDS, Job, JobVersion
from jobs.secrets import MASK
from jobs.versions import deleted_jobs, prune_deleted_versions

pytestmark = pytest.mark.django_db

URL = "http://127.0.0.1:9/"
SECRET = "s3cret-token-value"
WEB = {"id": "web", "cron": "*/5 * * * *", "url": URL, "headers": {"Authorization": f"Bearer {SECRET}"}}


def versions(job_id: str = "web") -> list[JobVersion]:
    return list(JobVersion.objects.filter(job_id=job_id).order_by("number"))


def only_new(before: int, job_id: str = "web") -> JobVersion:
    made = versions(job_id)[before:]
    assert len(made) == 1, [(v.number, v.action, v.changed_fields) for v in made]
    return made[0]


# --- each entry point records exactly one version, with who and through what ------------------


def test_api_create_update_delete_each_record_one_version_as_the_token_user(api):
    assert api.post("/api/jobs/", WEB, format="json").status_code == 201
    created = only_new(0)
    assert (created.number, created.action, created.actor, created.source) == (1, "create", "root", "api")
    assert created.definition["headers"] == {"Authorization": f"Bearer {SECRET}"}  # stored as in the job

    response = api.patch("/api/jobs/web/", {"cron": "*/7 * * * *", "change_reason": "slower"}, format="json")
    assert response.status_code == 200, response.json()
    updated = only_new(1)
    assert (updated.number, updated.action, updated.source, updated.reason) == (2, "update", "api", "slower")
    assert updated.changed_fields == ["cron"]

    api.patch("/api/jobs/web/", {"name": "Web"}, format="json", HTTP_X_CHANGE_REASON="renamed by header")
    assert only_new(2).reason == "renamed by header"

    assert api.delete("/api/jobs/web/").status_code == 204
    deleted = only_new(3)
    assert (deleted.action, deleted.actor, deleted.source) == ("delete", "root", "api")
    assert deleted.definition["cron"] == "*/7 * * * *"


def test_a_save_that_changes_nothing_records_nothing(api):
    api.post("/api/jobs/", WEB, format="json")
    assert api.put("/api/jobs/web/", api.get("/api/jobs/web/").json(), format="json").status_code == 200
    assert api.patch("/api/jobs/web/", {"cron": "*/5 * * * *"}, format="json").status_code == 200
    assert len(versions()) == 1


def test_pause_and_resume_are_actions_not_versions(api):
    api.post("/api/jobs/", WEB, format="json")
    api.post("/api/jobs/web/pause/")
    api.post("/api/jobs/web/resume/")
    api.patch("/api/jobs/web/", {"status": "paused"}, format="json")
    assert len(versions()) == 1


def test_bulk_delete_records_one_version_per_job(api):
    for job_id in ("a", "b"):
        services.job_create(data={"id": job_id, "interval_seconds": 60, "url": URL})
    response = api.post("/api/jobs/bulk/", {"action": "delete", "ids": ["a", "b"]}, format="json")
    assert response.status_code == 200
    for job_id in ("a", "b"):
        last = only_new(1, job_id)
        assert (last.action, last.actor, last.source) == ("delete", "root", "api")


def test_the_admin_records_one_version_with_its_reason(admin_user):
    services.job_create(data={"id": "web", "interval_seconds": 60, "url": URL})
    client = Client()
    client.force_login(admin_user)
    page = client.get("/admin/jobs/job/web/change/")
    form = {k: v for k, v in page.context["adminform"].form.initial.items() if v is not None}
    form.update(interval_seconds=120, headers="{}", handler_kwargs="{}", change_reason="less often")
    response = client.post("/admin/jobs/job/web/change/", form)
    assert response.status_code == 302, response.context["adminform"].form.errors
    version = only_new(1)
    assert (version.actor, version.source, version.reason, version.changed_fields) == (
        "root", "admin", "less often", ["interval_seconds"],
    )  # fmt: skip


def test_the_weizhi_paths_record_as_weizhi(api):
    response = api.post("/jobs", {"id": "wz", "cron": "*/10 * * * * *", "url": URL}, format="json")
    assert response.status_code == 200
    created = only_new(0, "wz")
    assert (created.action, created.actor, created.source) == ("create", "root", "weizhi")
    api.delete("/jobs/wz")
    assert (only_new(1, "wz").action, only_new(1, "wz").source) == ("delete", "weizhi")


def test_the_import_command_records_as_import(tmp_path):
    services.job_create(data={"id": "web", "interval_seconds": 60, "url": URL})
    path = tmp_path / "jobs.json"
    path.write_text(
        json.dumps([{"id": "web", "interval_seconds": 90, "url": URL}, {"id": "new", "cron": "0 * * * *", "url": URL}])
    )
    call_command("import_jobs", str(path), stdout=StringIO(), stderr=StringIO())
    updated, created = only_new(1), only_new(0, "new")
    assert (updated.action, updated.actor, updated.source) == ("update", "import", "import")
    assert (created.action, created.actor, created.source) == ("create", "import", "import")
    call_command("import_jobs", str(path), stdout=StringIO(), stderr=StringIO())  # unchanged: no versions
    assert len(versions()) == 2
    assert len(versions("new")) == 1


def test_system_jobs_are_recorded_as_the_system():
    services.ensure_system_jobs()
    version = only_new(0, "cleanup-runs")
    assert (version.action, version.actor, version.source) == ("create", "system", "system")


# --- revert ----------------------------------------------------------------------------------


def test_revert_restores_every_field_and_the_schedule(api):
    api.post("/api/jobs/", {**WEB, "max_retries": 2, "description": "first"}, format="json")
    first = Job.objects.get(pk="web")
    changed = {
        "interval_seconds": 30, "cron": "", "trigger": "interval", "description": "second", "max_retries": 5,
        "headers": {"Authorization": "Bearer other"}, "method": "POST", "body": "{}", "timeout_seconds": 3,
    }  # fmt: skip
    assert api.patch("/api/jobs/web/", changed, format="json").status_code == 200
    response = api.post("/api/jobs/web/versions/1/revert/", {"change_reason": "too fast"}, format="json")
    assert response.status_code == 200, response.json()
    job = Job.objects.get(pk="web")
    assert {n: getattr(job, n) for n in VERSIONED_FIELDS} == {n: getattr(first, n) for n in VERSIONED_FIELDS}
    assert job.next_run_at is not None
    assert job.next_run_at.minute % 5 == 0
    assert job.next_run_at.second == 0
    reverted = versions()[-1]
    assert (reverted.number, reverted.action, reverted.reason) == (3, "revert", "Reverted to version 1: too fast")
    assert response.json()["headers"]["Authorization"] == MASK


def test_revert_is_validated_as_any_update(api):
    later = (timezone.now() + timedelta(minutes=1)).isoformat()
    api.post("/api/jobs/", {"id": "once", "run_at": later, "url": URL}, format="json")
    api.patch("/api/jobs/once/", {"run_at": None, "interval_seconds": 60, "trigger": "interval"}, format="json")
    JobVersion.objects.filter(job_id="once", number=1).update(
        definition={**versions("once")[0].definition, "run_at": (timezone.now() - timedelta(hours=1)).isoformat()}
    )
    response = api.post("/api/jobs/once/versions/1/revert/", {}, format="json")
    assert response.status_code == 400, response.json()
    assert "run_at" in response.json()
    assert api.post("/api/jobs/once/versions/9/revert/", {}, format="json").status_code == 404


# --- restore ---------------------------------------------------------------------------------


def test_a_deleted_job_is_restored_paused_with_its_real_secrets(api):
    api.post("/api/jobs/", WEB, format="json")
    api.delete("/api/jobs/web/")
    assert [v.job_id for v in deleted_jobs()] == ["web"]
    assert api.get("/api/jobs/web/versions/").json()["count"] == 2  # listable while deleted
    response = api.post("/api/jobs/restore/", {"id": "web", "change_reason": "oops"}, format="json")
    assert response.status_code == 201, response.json()
    job = Job.objects.get(pk="web")
    assert job.status == Job.Status.PAUSED
    assert job.cron == "*/5 * * * *"
    assert job.headers == {"Authorization": f"Bearer {SECRET}"}
    restored = versions()[-1]
    assert (restored.number, restored.action, restored.reason) == (3, "restore", "Restored from version 2: oops")
    assert list(deleted_jobs()) == []
    assert api.post("/api/jobs/restore/", {"id": "web"}, format="json").status_code == 409
    assert api.post("/api/jobs/restore/", {"id": "never"}, format="json").status_code == 404
    assert api.get("/api/jobs/never/versions/").status_code == 404


def test_restore_is_a_reserved_id(api):
    assert api.post("/api/jobs/", {**WEB, "id": "restore"}, format="json").status_code == 400
    assert api.get("/api/jobs/restore/").status_code == 404


def test_the_versions_of_deleted_jobs_are_pruned_after_the_retention(settings):
    settings.CRONTASK_VERSION_RETENTION_DAYS = 90
    for job_id in ("old", "recent", "kept"):
        services.job_create(data={"id": job_id, "interval_seconds": 60, "url": URL})
    for job_id in ("old", "recent"):
        services.job_delete(job=Job.objects.get(pk=job_id))
    JobVersion.objects.filter(job_id__in=["old", "kept"]).update(created_at=timezone.now() - timedelta(days=91))
    assert prune_deleted_versions() == 2
    assert versions("old") == []
    assert len(versions("recent")) == 2
    assert len(versions("kept")) == 1


def test_the_cleanup_job_prunes_versions_too(settings):
    from runs.retention import run_cleanup

    services.job_create(data={"id": "old", "interval_seconds": 60, "url": URL})
    services.job_delete(job=Job.objects.get(pk="old"))
    JobVersion.objects.filter(job_id="old").update(created_at=timezone.now() - timedelta(days=365))
    assert run_cleanup()["versions_deleted"] == 2


# --- shown masked ----------------------------------------------------------------------------


def test_secrets_are_masked_in_every_version_view(api, admin_user):
    api.post("/api/jobs/", WEB, format="json")
    api.patch("/api/jobs/web/", {"headers": {"Authorization": "Bearer another-secret"}}, format="json")
    listed = api.get("/api/jobs/web/versions/")
    assert listed.status_code == 200
    assert [v["number"] for v in listed.json()["results"]] == [2, 1]
    detail = api.get("/api/jobs/web/versions/2/").json()
    assert detail["diff"] == {"headers": {"before": {"Authorization": MASK}, "after": {"Authorization": MASK}}}
    client = Client()
    client.force_login(admin_user)
    page = client.get("/admin/jobs/job/web/history/")
    assert page.status_code == 200
    for body in (listed.content, json.dumps(detail).encode(), page.content):
        assert SECRET.encode() not in body
        assert b"another-secret" not in body
    assert b"Revert to this version" in page.content


def test_the_job_list_filters_the_jobs_changed_in_the_last_day(admin_user):
    for job_id in ("fresh", "stale"):
        services.job_create(data={"id": job_id, "interval_seconds": 60, "url": URL})
    JobVersion.objects.filter(job_id="stale").update(created_at=timezone.now() - timedelta(days=2))
    client = Client()
    client.force_login(admin_user)
    page = client.get("/admin/jobs/job/?changed=1d")
    assert page.status_code == 200
    assert [job.pk for job in page.context["cl"].result_list] == ["fresh"]
    assert b"in the last day" in client.get("/admin/jobs/job/").content


# --- what is a change ------------------------------------------------------------------------

ONE_OFF = {"id": "once", "run_at": "2099-01-01T13:00:00+08:00", "timezone": "Asia/Shanghai", "url": URL}


def test_the_same_run_at_in_another_zone_is_no_change(api):
    services.job_create(data=ONE_OFF)  # as an import gives it: the offset it was written with
    assert versions("once")[0].definition["run_at"] == "2099-01-01T05:00:00+00:00"  # kept in UTC
    same = {"run_at": "2099-01-01T05:00:00Z"}
    assert api.patch("/api/jobs/once/", same, format="json").status_code == 200
    assert api.put("/api/jobs/once/", api.get("/api/jobs/once/").json(), format="json").status_code == 200
    assert len(versions("once")) == 1
    assert api.patch("/api/jobs/once/", {"run_at": "2099-01-01T14:00:00+08:00"}, format="json").status_code == 200
    assert only_new(1, "once").changed_fields == ["run_at"]


def test_versions_recorded_before_run_at_was_kept_in_utc_still_compare_by_instant(api):
    api.post("/api/jobs/", ONE_OFF, format="json")
    first = versions("once")[0]
    JobVersion.objects.filter(pk=first.pk).update(definition={**first.definition, "run_at": ONE_OFF["run_at"]})
    assert api.patch("/api/jobs/once/", {"run_at": "2099-01-01T05:00:00Z"}, format="json").status_code == 200
    assert len(versions("once")) == 1
    api.patch("/api/jobs/once/", {"name": "Once"}, format="json")
    assert api.get("/api/jobs/once/versions/2/").json()["diff"].keys() == {"name"}


def test_a_field_added_since_the_last_version_is_no_change_while_it_keeps_its_default(api):
    api.post("/api/jobs/", WEB, format="json")
    first = versions()[0]
    older = {name: value for name, value in first.definition.items() if name != "max_concurrent"}
    JobVersion.objects.filter(pk=first.pk).update(definition=older)  # as recorded before the field existed
    assert api.patch("/api/jobs/web/", {"cron": "*/5 * * * *"}, format="json").status_code == 200
    assert len(versions()) == 1
    api.patch("/api/jobs/web/", {"max_concurrent": 3, "concurrency_policy": "allow"}, format="json")
    assert "max_concurrent" in only_new(1).changed_fields


# --- delete and restore, the hard cases ------------------------------------------------------


def test_a_deleted_one_off_whose_date_has_passed_is_restored_paused_and_asks_for_a_new_date(api):
    api.post("/api/jobs/", ONE_OFF, format="json")
    api.delete("/api/jobs/once/")
    last = versions("once")[-1]
    JobVersion.objects.filter(pk=last.pk).update(definition={**last.definition, "run_at": "2020-01-01T00:00:00+00:00"})
    response = api.post("/api/jobs/restore/", {"id": "once"}, format="json")
    assert response.status_code == 201, response.json()
    job = Job.objects.get(pk="once")
    assert (job.status, job.next_run_at) == (Job.Status.PAUSED, None)
    resumed = api.post("/api/jobs/once/resume/")
    assert resumed.status_code == 400
    assert "run_at" in resumed.json()
    # a create is not a restore: a past date is still refused there
    past = {**ONE_OFF, "id": "late", "status": "paused", "run_at": "2020-01-01T00:00:00Z"}
    assert "run_at" in api.post("/api/jobs/", past, format="json").json()


def test_deleting_a_job_already_deleted_is_one_delete(api):
    api.post("/api/jobs/", WEB, format="json")
    seen = Job.objects.get(pk="web")
    also_seen = Job.objects.get(pk="web")
    services.job_delete(job=seen)
    services.job_delete(job=also_seen)  # a second request that had read the job before the first deleted it
    assert [v.action for v in versions()] == ["create", "delete"]
    from audit.models import AuditEntry

    assert AuditEntry.objects.filter(action="delete", job_id="web").count() == 1


# --- the admin's History -----------------------------------------------------------------------


def test_the_history_page_reads_the_same_number_of_queries_however_many_versions(admin_user):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client = Client()
    client.force_login(admin_user)
    services.job_create(data={"id": "web", "interval_seconds": 60, "url": URL})

    def queries_for_history() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert client.get("/admin/jobs/job/web/history/").status_code == 200
        return len(queries)

    for seconds in range(61, 64):
        services.job_update(job=Job.objects.get(pk="web"), data={"interval_seconds": seconds})
    few = queries_for_history()
    for seconds in range(64, 84):
        services.job_update(job=Job.objects.get(pk="web"), data={"interval_seconds": seconds})
    assert queries_for_history() == few


def test_the_history_pages_through_older_versions(admin_user, settings):
    from jobs import admin as jobs_admin

    client = Client()
    client.force_login(admin_user)
    services.job_create(data={"id": "web", "interval_seconds": 60, "url": URL})
    for seconds in range(61, 61 + jobs_admin.HISTORY_PAGE + 4):
        services.job_update(job=Job.objects.get(pk="web"), data={"interval_seconds": seconds})
    total = jobs_admin.HISTORY_PAGE + 5
    first = client.get("/admin/jobs/job/web/history/")
    numbers = [row["version"].number for row in first.context["rows"]]
    assert numbers == list(range(total, total - jobs_admin.HISTORY_PAGE, -1))
    assert b"Older versions" in first.content
    # the oldest on the page is diffed with the newest of the next page
    assert first.context["rows"][-1]["diff"] == [("interval_seconds", "64", "65")]
    second = client.get("/admin/jobs/job/web/history/?page=2")
    rows = second.context["rows"]
    assert [row["version"].number for row in rows] == [5, 4, 3, 2, 1]
    assert rows[0]["diff"] == [("interval_seconds", "63", "64")]
    assert all(row["can_revert"] for row in rows[:-1])
    assert b"Newer versions" in second.content


def test_the_baseline_of_jobs_from_before_versions_is_dated_when_the_job_last_changed():
    import importlib

    from django.apps import apps

    baseline = importlib.import_module("jobs.migrations.0012_jobversion_baseline")
    for job_id in ("old", "new"):
        services.job_create(data={"id": job_id, "interval_seconds": 60, "url": URL})
    JobVersion.objects.all().delete()  # as before versions were recorded
    long_ago = timezone.now() - timedelta(days=3)
    Job.objects.filter(pk="old").update(updated_at=long_ago)
    baseline.record_baseline(apps, None)
    assert JobVersion.objects.get(job_id="old").created_at == long_ago
    assert JobVersion.objects.get(job_id="new").created_at > long_ago
    recent = Job.objects.filter(
        pk__in=JobVersion.objects.filter(created_at__gte=timezone.now() - timedelta(days=1)).values("job_id")
    )
    assert [job.pk for job in recent] == ["new"]
