"""manage.py import_jobs, export_jobs, cleanup_runs, run_job, sync_schedules, runall, healthcheck."""

from __future__ import annotations

import json
import math
import os
import signal
import sys
import threading
import time
from datetime import timedelta
from io import StringIO
from pathlib import Path

import psutil
import pytest
from django.contrib.auth import authenticate, get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import NotSupportedError, connection
from django.db.migrations.executor import MigrationExecutor
from django.db.models import SET_NULL
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from alerts.models import AlertRule, Incident, Notification
from alerts.services import channel_create
from core.foreign_keys import SetNullInDatabase, nulled_by_database
from crontask.bootstrap import ensure_admin_user
from crontask.management.commands import runall
from heartbeats.services import BEAT, record_heartbeat
from jobs import services
from jobs.importer import export_job, parse_crontab
from jobs.models import Job
from runs.models import Run
from runs.retention import delete_old_runs, links_to_null, run_links

pytestmark = pytest.mark.django_db
URL = "http://127.0.0.1:9/"


def run(*args: str) -> tuple[str, str, int]:
    out, err = StringIO(), StringIO()
    try:
        call_command(*args, stdout=out, stderr=err)
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    return out.getvalue(), err.getvalue(), code


def write(tmp_path: Path, name: str, content: str) -> Path:
    path = tmp_path / name
    path.write_text(content)
    return path


def test_import_upserts_by_id_and_reports_each_invalid_entry(tmp_path):
    services.job_create(data={"id": "same", "interval_seconds": 60, "url": URL})
    services.job_create(data={"id": "changed", "interval_seconds": 60, "url": URL})
    entries = [
        {"id": "new", "cron": "*/5 * * * *", "url": URL},
        {"id": "same", "interval_seconds": 60, "url": URL},
        {"id": "changed", "interval_seconds": 30, "url": URL},
        {"id": "broken", "cron": "61 * * * *", "url": URL},
        {"id": "after-the-broken-one", "trigger": "interval", "trigger_args": {"hours": 1}, "url": URL},
    ]
    out, err, code = run("import_jobs", str(write(tmp_path, "jobs.json", json.dumps(entries))))
    assert out.strip() == "created 2, updated 1, unchanged 1, invalid 1"
    assert "invalid broken: cron: Invalid cron expression" in err
    assert code == 1
    assert Job.objects.get(pk="changed").interval_seconds == 30
    assert Job.objects.get(pk="after-the-broken-one").interval_seconds == 3600
    assert PeriodicTask.objects.filter(crontask_job__pk="new").exists()


def test_an_entry_with_a_denied_host_is_invalid_on_url(tmp_path):
    entries = [{"id": "ssrf", "cron": "* * * * *", "url": "http://metadata.google.internal/"}]
    out, err, code = run("import_jobs", str(write(tmp_path, "jobs.json", json.dumps(entries))))
    assert (out.strip(), code) == ("created 0, updated 0, unchanged 0, invalid 1", 1)
    assert "invalid ssrf: url: Egress denied: metadata.google.internal is a cloud metadata host name" in err


def test_a_dry_run_changes_nothing(tmp_path):
    path = write(tmp_path, "jobs.yaml", "- id: a\n  cron: '*/5 * * * *'\n  url: http://127.0.0.1:9/\n")
    out, _, code = run("import_jobs", str(path), "--dry-run")
    assert (out.strip(), code) == ("Dry run: created 1, updated 0, unchanged 0, invalid 0", 0)
    assert not Job.objects.exists()
    assert not PeriodicTask.objects.exists()


def test_an_export_imports_back_to_the_same_jobs(tmp_path):
    services.job_create(
        data={
            "id": "c",
            "cron": "0 9 * * mon-fri",
            "timezone": "Asia/Shanghai",
            "url": URL,
            "method": "POST",
            "headers": {"Authorization": "Bearer x"},
            "body": "{}",
            "max_retries": 2,
            "concurrency_policy": "forbid",
            "follow_redirects": False,
        }
    )
    services.job_create(data={"id": "i", "interval_seconds": 90, "url": URL, "status": "paused"})
    services.job_create(data={"id": "d", "run_at": "2099-01-01T00:00:00+00:00", "url": URL})
    services.job_create(
        data={"id": "m", "kind": "python", "handler": "scripts:http_check", "handler_kwargs": {"url": URL}}
    )
    before = {job.pk: export_job(job, include_secrets=True) for job in Job.objects.all()}
    for export_format in ("json", "yaml"):
        path = tmp_path / f"export.{export_format}"
        run("export_jobs", "--format", export_format, "--output", str(path), "--include-secrets")
        Job.objects.all().delete()
        out, err, code = run("import_jobs", str(path))
        assert (out.strip(), err, code) == ("created 4, updated 0, unchanged 0, invalid 0", "", 0)
        assert {job.pk: export_job(job, include_secrets=True) for job in Job.objects.all()} == before
        assert run("import_jobs", str(path))[0].strip() == "created 0, updated 0, unchanged 4, invalid 0"


def test_an_export_masks_secrets_unless_asked_to_include_them(tmp_path):
    url = "https://bot:url-pass-1234@example.com/hook?token=query-token-5678"
    services.job_create(data={"id": "c", "url": url, "headers": {"X-Auth-Key": "auth-key-0002"}})
    services.job_create(
        data={"id": "m", "kind": "python", "handler": "scripts:http_check", "handler_kwargs": {"url": URL}}
    )
    masked, _, code = run("export_jobs")
    assert code == 0
    assert "********" in masked
    for secret in ("url-pass-1234", "query-token-5678", "auth-key-0002"):
        assert secret not in masked
    full = run("export_jobs", "--include-secrets")[0]
    assert all(secret in full for secret in ("url-pass-1234", "query-token-5678", "auth-key-0002"))
    path = write(tmp_path, "masked.json", masked)
    assert run("import_jobs", str(path))[0].strip() == "created 0, updated 0, unchanged 2, invalid 0"
    assert Job.objects.get(pk="c").url == url


def test_a_crontab_file_becomes_shell_jobs(tmp_path, settings):
    settings.CRONTASK_ALLOW_SHELL = True
    crontab = """
# nightly backups
MAILTO=ops@example.com
PATH=/usr/local/bin:/usr/bin
*/5 * * * * /usr/bin/check --quiet
CRON_TZ=Asia/Shanghai
0 9 * * mon-fri echo "good morning" >> /tmp/greet.log
@daily /usr/bin/rotate
@reboot /usr/bin/never
61 * * * * /bin/true
"""
    out, err, _ = run("import_jobs", str(write(tmp_path, "crontab", crontab)))
    assert out.strip() == "created 3, updated 0, unchanged 0, invalid 2"
    assert "@reboot is not supported" in err
    assert "Invalid cron expression" in err
    jobs = {job.cron: job for job in Job.objects.all()}
    assert jobs["*/5 * * * *"].command == "env PATH=/usr/local/bin:/usr/bin /usr/bin/check --quiet"
    assert jobs["*/5 * * * *"].kind == "shell"
    assert jobs["0 9 * * mon-fri"].timezone == "Asia/Shanghai"
    assert jobs["0 0 * * *"].command.endswith("/usr/bin/rotate")
    assert run("import_jobs", str(write(tmp_path, "crontab", crontab)))[0].startswith(
        "created 0, updated 0, unchanged 3"
    )


def test_crontab_ids_are_stable_so_a_reimport_updates_nothing():
    first = parse_crontab("*/5 * * * * /bin/true\n")
    assert first == parse_crontab("# a comment\n*/5 * * * * /bin/true\n")
    assert isinstance(first[0], dict)
    assert first[0]["id"].startswith("crontab-")


def test_unreadable_files_are_a_clear_error(tmp_path):
    with pytest.raises(CommandError, match="Not valid JSON"):
        call_command("import_jobs", str(write(tmp_path, "bad.json", "{nope")))
    with pytest.raises(CommandError, match="Expected a list"):
        call_command("import_jobs", str(write(tmp_path, "one.json", '{"id": "x"}')))


def test_cleanup_deletes_old_finished_runs_in_batches_keeping_the_newest(tmp_path):
    job = services.job_create(data={"id": "j", "interval_seconds": 60, "url": URL})
    other = services.job_create(data={"id": "k", "interval_seconds": 60, "url": URL})
    old = timezone.now() - timedelta(days=40)
    Run.objects.bulk_create(
        [Run(job=job, trigger="scheduled", status="success", queued_at=old + timedelta(seconds=i)) for i in range(25)]
        + [Run(job=other, trigger="scheduled", status="failed", queued_at=old) for _ in range(3)]
        + [Run(job=job, trigger="scheduled", status="running", queued_at=old)]  # not finished: kept
        + [Run(job=job, trigger="scheduled", status="success", queued_at=timezone.now())]  # recent: kept
    )
    out, _, _ = run("cleanup_runs", "--older-than", "30d", "--keep-per-job", "5", "--batch-size", "7")
    assert (
        out.strip() == "Deleted 22 runs older than 30d; kept 7 older ones (not finished, or among each job's newest 5)."
    )
    assert Run.objects.filter(job=job).count() == 5  # the newest 5, the running and the recent one among them
    assert Run.objects.filter(job=other).count() == 3  # no more than 5: all kept
    assert run("cleanup_runs", "--older-than", "30d")[0].strip() == (
        "Deleted 6 runs older than 30d; kept 1 older ones (not finished)."
    )
    assert set(Run.objects.values_list("status", flat=True)) == {"running", "success"}
    with pytest.raises(CommandError, match="not an age"):
        call_command("cleanup_runs", "--older-than", "soon")


def test_cleanup_deletes_each_batch_with_one_statement_and_loads_no_captured_text():
    job = services.job_create(data={"id": "j", "interval_seconds": 60, "url": URL})
    other = services.job_create(data={"id": "k", "interval_seconds": 60, "url": URL})
    old = timezone.now() - timedelta(days=40)
    big = {"output": "o" * 2000, "response_body": "b" * 2000, "log_output": "l" * 2000, "traceback": "t" * 2000}
    firsts = Run.objects.bulk_create(
        [Run(job=job, trigger="scheduled", status="failed", queued_at=old, **big) for _ in range(12)]
        + [Run(job=other, trigger="scheduled", status="failed", queued_at=old, **big) for _ in range(3)]
    )
    # A recent retry of an old run: kept, its link to the deleted run cleared (retry_of is SET_NULL).
    retry = Run.objects.create(
        job=job, trigger="retry", attempt=2, status="success", queued_at=timezone.now(), retry_of=firsts[0]
    )
    with CaptureQueriesContext(connection) as ctx:
        assert delete_old_runs(older_than=timedelta(days=30), batch_size=5) == 15
    statements = [q["sql"] for q in ctx.captured_queries]
    loaded = [sql for sql in statements if sql.lstrip().upper().startswith("SELECT")]
    for column in ("output", "response_body", "log_output", "traceback"):
        assert not [sql for sql in loaded if f'"{column}"' in sql], column
    deletes = [sql for sql in statements if sql.lstrip().upper().startswith("DELETE")]
    # Without keep_per_job the batches go across jobs, oldest queued first: 15 runs in batches of 5.
    assert len(deletes) == math.ceil(15 / 5)
    updates = [sql for sql in statements if sql.lstrip().upper().startswith("UPDATE")]
    # On PostgreSQL the database nulls every link itself (ON DELETE SET NULL): no UPDATE. Elsewhere
    # one UPDATE per link to a run, per batch.
    nulled_here = [] if connection.vendor == "postgresql" else run_links()
    assert [(rel.related_model, rel.field.name) for rel in links_to_null()] == [
        (rel.related_model, rel.field.name) for rel in nulled_here
    ]
    assert len(updates) == len(deletes) * len(nulled_here)
    assert list(Run.objects.values_list("pk", flat=True)) == [retry.pk]
    retry.refresh_from_db()
    assert retry.retry_of_id is None


def test_cleanup_keeping_newest_per_job_batches_job_by_job_each_batch_once():
    """With keep_per_job, job by job: each batch starts after the last one (no batch read twice)."""
    job = services.job_create(data={"id": "j", "interval_seconds": 60, "url": URL})
    other = services.job_create(data={"id": "k", "interval_seconds": 60, "url": URL})
    old = timezone.now() - timedelta(days=40)
    runs = Run.objects.bulk_create(
        [Run(job=job, trigger="scheduled", status="failed", queued_at=old) for _ in range(13)]
        + [Run(job=other, trigger="scheduled", status="success", queued_at=old) for _ in range(4)]
    )
    with CaptureQueriesContext(connection) as ctx:
        assert delete_old_runs(older_than=timedelta(days=30), keep_per_job=1, batch_size=5) == 15
    deletes = [q["sql"] for q in ctx.captured_queries if q["sql"].lstrip().upper().startswith("DELETE")]
    assert len(deletes) == math.ceil(12 / 5) + math.ceil(3 / 5)
    assert sorted(Run.objects.values_list("pk", flat=True)) == [runs[12].pk, runs[16].pk]  # each job's newest


def test_cleanup_walks_past_old_unfinished_runs_and_keeps_them():
    """The oldest runs still queued or running stay, and the batches after them are deleted."""
    job = services.job_create(data={"id": "j", "interval_seconds": 60, "url": URL})
    now = timezone.now()
    stuck = Run.objects.bulk_create(
        [
            Run(job=job, trigger="manual", status=status, queued_at=now - timedelta(days=90))
            for status in ("queued", "running")
        ]
    )
    Run.objects.bulk_create(
        [
            Run(job=job, trigger="manual", status="success", queued_at=now - timedelta(days=80, minutes=i))
            for i in range(7)
        ]
        + [Run(job=job, trigger="manual", status="success", queued_at=None)]  # no time: never old
    )
    recent = Run.objects.create(job=job, trigger="manual", status="success", queued_at=now - timedelta(days=1))
    assert delete_old_runs(older_than=timedelta(days=30), batch_size=2, now=now) == 7
    left = set(Run.objects.values_list("pk", flat=True))
    assert left >= {stuck[0].pk, stuck[1].pk, recent.pk}
    assert len(left) == 4


def test_every_link_to_a_run_is_set_null_and_retention_unlinks_them_all():
    """Retention deletes runs with a raw DELETE after nulling every link to them (runs.retention.
    run_links, hidden ones included): each must be SET_NULL, whichever app holds it."""
    links = {(rel.related_model.__name__, rel.field.name): rel.on_delete for rel in run_links()}
    assert set(links) >= {
        ("Run", "retry_of"), ("Notification", "run"), ("Incident", "first_run"), ("Incident", "last_run"),
    }  # fmt: skip
    assert set(links.values()) == {SET_NULL}
    job = services.job_create(data={"id": "old", "interval_seconds": 60, "url": URL})
    long_ago = timezone.now() - timedelta(days=60)
    old = Run.objects.create(job=job, trigger="manual", status="failed", queued_at=long_ago)
    channel = channel_create(data={"name": "ops", "kind": "slack", "target": "https://hooks.example.com/x"})
    rule = AlertRule.objects.create(name="failed", event="failed")
    incident = Incident.objects.create(
        rule=rule, job=job, event="failed", first_run=old, last_run=old, opened_at=long_ago,
        last_notified_at=long_ago,
    )  # fmt: skip
    notification = Notification.objects.create(channel=channel, job=job, run=old, event="failed", incident=incident)
    assert delete_old_runs(older_than=timedelta(days=30)) == 1
    connection.check_constraints()  # what the commit would find: no row points at a deleted run
    incident.refresh_from_db()
    notification.refresh_from_db()
    assert (incident.first_run_id, incident.last_run_id, notification.run_id) == (None, None, None)
    if connection.vendor == "postgresql":  # and the database nulls each of them itself
        tables = {(rel.related_model._meta.db_table, rel.field.column) for rel in run_links()}
        assert nulled_by_database(connection, Run._meta.db_table) == tables


@pytest.mark.skipif(connection.vendor != "postgresql", reason="SQLite's constraints have no ON DELETE action here")
def test_cleanup_nulls_a_link_itself_when_its_constraint_lost_the_database_action():
    """A link whose constraint no longer says ON DELETE SET NULL (a later migration that alters the
    field writes it again without) is nulled by the cleanup, and only that one; reversing the
    migration's operation takes the action off, applying it puts it back."""
    operation = SetNullInDatabase(model_name="notification", name="run")
    state = MigrationExecutor(connection).loader.project_state()
    with connection.schema_editor(atomic=False) as editor:  # the test's transaction rolls it back
        operation.database_backwards("alerts", editor, state, state)
    assert [(rel.related_model, rel.field.name) for rel in links_to_null()] == [(Notification, "run")]
    job = services.job_create(data={"id": "old", "interval_seconds": 60, "url": URL})
    long_ago = timezone.now() - timedelta(days=60)
    old = Run.objects.create(job=job, trigger="manual", status="failed", queued_at=long_ago)
    retry = Run.objects.create(job=job, trigger="retry", status="success", queued_at=timezone.now(), retry_of=old)
    channel = channel_create(data={"name": "ops", "kind": "slack", "target": "https://hooks.example.com/x"})
    notification = Notification.objects.create(channel=channel, job=job, run=old, event="failed")
    with CaptureQueriesContext(connection) as ctx:
        assert delete_old_runs(older_than=timedelta(days=30)) == 1
    updates = [q["sql"] for q in ctx.captured_queries if q["sql"].lstrip().upper().startswith("UPDATE")]
    assert len(updates) == 1
    assert '"alerts_notification"' in updates[0]
    connection.check_constraints()
    notification.refresh_from_db()
    retry.refresh_from_db()
    assert (notification.run_id, retry.retry_of_id) == (None, None)  # the one by the cleanup, the other by the database
    # The ALTER TABLE needs no deferred check pending on the table: check_constraints() above ran them.
    with connection.schema_editor(atomic=False) as editor:
        operation.database_forwards("alerts", editor, state, state)
    assert links_to_null() == []
    with connection.schema_editor(atomic=True) as editor, pytest.raises(NotSupportedError):
        operation.database_forwards("alerts", editor, state, state)  # in a transaction it would lock the table


def test_run_job_runs_in_the_foreground_and_prints_the_run(http_target):
    services.job_create(data={"id": "fg", "url": f"{http_target.url}/hello"})
    out, _, code = run("run_job", "fg")
    assert code == 0
    assert "run 1 of fg: success" in out.replace(str(Run.objects.get().pk), "1")
    assert "status code: 200" in out
    assert http_target.hits["/hello"] == 1
    services.job_create(data={"id": "bad", "url": f"{http_target.url}/status/500"})
    assert run("run_job", "bad")[2] == 1
    with pytest.raises(CommandError, match="No job"):
        call_command("run_job", "missing")


def test_sync_schedules_rebuilds_the_periodic_tasks_and_creates_system_jobs():
    job = services.job_create(data={"id": "s", "interval_seconds": 60, "url": URL})
    assert job.periodic_task_id is not None
    PeriodicTask.objects.filter(pk=job.periodic_task_id).delete()
    out, _, _ = run("sync_schedules")
    assert out.startswith("Synced 2 jobs")
    interval = PeriodicTask.objects.get(crontask_job__pk="s").interval
    assert interval is not None
    assert interval.every == 60
    system = Job.objects.get(pk="cleanup-runs")
    assert system.is_system
    assert system.next_run_at is not None
    assert "created 0 system jobs" in run("sync_schedules")[0]


def test_a_large_import_shows_a_progress_bar_on_a_terminal(tmp_path, monkeypatch, capsys):
    import sys

    entries = [{"id": f"bulk-{i}", "interval_seconds": 60, "url": URL} for i in range(60)]
    path = write(tmp_path, "many.json", json.dumps(entries))
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    call_command("import_jobs", str(path))
    err = capsys.readouterr().err
    assert "[" + "#" * 40 + "] 60/60" in err
    assert Job.objects.count() == 60


@pytest.fixture
def runall_without_processes(monkeypatch):
    """runall up to the point where it would start web, worker and beat; returns what it would start."""
    started: list[dict[str, list[str]]] = []
    monkeypatch.delenv("CRONTASK_ADMIN_PASSWORD", raising=False)
    # The test database is migrated already; collectstatic is not what is tested here.
    monkeypatch.setattr(runall, "call_command", lambda *args, **kwargs: None)

    def supervise(self, commands: dict[str, list[str]]) -> int:
        started.append(commands)
        return 0

    monkeypatch.setattr(runall.Command, "_supervise", supervise)
    return started


def test_runall_prints_the_admin_url_and_the_generated_password_on_the_first_start_only(runall_without_processes):
    first, _, code = run("runall", "--port", "8123")
    assert code == 0
    assert "Crontask admin: http://127.0.0.1:8123/admin/  (user: admin)" in first
    (password,) = [line.split(": ", 1)[1] for line in first.splitlines() if line.startswith("Generated admin password")]
    assert len(password) >= 12
    assert authenticate(username="admin", password=password) is not None
    second, _, _ = run("runall", "--port", "8123")
    assert "Crontask admin: http://127.0.0.1:8123/admin/" in second
    assert "password" not in second.lower()
    assert password not in second
    assert authenticate(username="admin", password=password) is not None  # not reset
    commands = runall_without_processes[0]
    assert commands["web"][-3:] == ["127.0.0.1:8123", "--noreload", "--skip-checks"]


def test_runall_with_a_password_set_prints_none(runall_without_processes, monkeypatch):
    monkeypatch.setenv("CRONTASK_ADMIN_PASSWORD", "chosen-Passw0rd")
    out, _, _ = run("runall")
    assert "password" not in out.lower()
    assert authenticate(username="admin", password="chosen-Passw0rd") is not None


def test_the_admin_user_is_made_once_and_never_reset():
    generated = ensure_admin_user()
    assert generated
    assert ensure_admin_user() is None
    assert ensure_admin_user(password="other-Passw0rd") is None
    assert authenticate(username="admin", password=generated) is not None
    assert get_user_model().objects.filter(is_superuser=True).count() == 1


def test_runall_stops_its_processes_when_the_terminal_hangs_up():
    """SIGHUP (the terminal closed) stops web, worker and beat, as Ctrl-C and SIGTERM do."""
    placeholder_calls = []
    previous = signal.signal(signal.SIGHUP, lambda signum, frame: placeholder_calls.append(signum))
    sleeper = [sys.executable, "-c", "import time; time.sleep(30)"]
    me = psutil.Process()
    before = {child.pid for child in me.children()}

    def ours() -> list[psutil.Process]:
        return [child for child in me.children() if child.pid not in before]

    def hang_up() -> None:
        deadline = time.monotonic() + 20
        while len(ours()) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGHUP)

    try:
        threading.Thread(target=hang_up, daemon=True).start()
        started = time.monotonic()
        code = runall.Command()._supervise({"web": sleeper, "worker": sleeper})
        elapsed = time.monotonic() - started
        assert (code, placeholder_calls) == (0, [])
        assert elapsed < 20
        assert ours() == []
        assert signal.getsignal(signal.SIGHUP) is not None
        signal.raise_signal(signal.SIGHUP)  # the handler in place before runall is back
        assert placeholder_calls == [signal.SIGHUP]
    finally:
        signal.signal(signal.SIGHUP, previous)


def test_healthcheck_passes_while_beats_heartbeat_is_fresh_and_fails_after():
    out, err, code = run("healthcheck", "beat")
    assert (out, err, code) == ("", "beat: no recent heartbeat\n", 1)
    seen_at = timezone.now() - timedelta(seconds=5)
    record_heartbeat(BEAT, now=seen_at)
    assert run("healthcheck", "beat") == (f"beat ok, last seen {seen_at.isoformat()}\n", "", 0)
    record_heartbeat(BEAT, now=timezone.now() - timedelta(minutes=2))
    assert run("healthcheck", "beat")[1:] == ("beat: no recent heartbeat\n", 1)
    assert run("healthcheck", "database") == ("database ok\n", "", 0)
