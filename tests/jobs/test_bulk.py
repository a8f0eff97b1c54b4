"""The bulk path of job creation (``jobs.bulk``): each entry validated as any create, reported by
its place; each batch written whole or not at all; what it writes is what ``job_create`` writes."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from django.db import IntegrityError, connection
from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask

from audit.models import AuditEntry
from core import origin
from jobs import bulk, services, versions
from jobs.importer import import_entries
from jobs.models import VERSIONED_FIELDS, Job, JobVersion

pytestmark = pytest.mark.django_db

URL = "http://127.0.0.1:9/"


def entries(n: int, prefix: str = "j") -> list[dict]:
    return [
        {"id": f"{prefix}{i}", "url": URL, "cron": f"{i % 60} * * * *", "timezone": "Europe/Berlin"} for i in range(n)
    ]


def test_bad_entries_are_reported_by_place_and_field_and_the_good_ones_are_created():
    given: list[Any] = [
        *entries(3),
        {"id": "bad-cron", "url": URL, "cron": "61 * * * *"},
        {"id": "j1", "url": URL, "interval_seconds": 5},  # twice in the list
        {"id": "no-target", "cron": "* * * * *"},
        {"id": "shell", "kind": "shell", "command": "id", "interval_seconds": 5},
        "not an object",
    ]
    results = bulk.jobs_create_many(given[:-1], batch_size=100)
    assert [r.ok for r in results] == [True, True, True, False, False, False, False]
    assert "cron" in results[3].errors
    assert results[4].errors == {"id": ["'j1' is given twice in this list (entry 2)."]}
    # twice in the list, in two batches: the second finds the first's job
    Job.objects.all().delete()
    again = bulk.jobs_create_many(given[:-1], batch_size=2)
    assert again[4].errors == {"id": ["A job with id 'j1' already exists."]}
    assert results[5].errors.keys() == {"__all__"} or results[5].errors.keys() <= {"url", "kind", "__all__"}
    assert results[6].errors  # no shell without the setting and the permission
    assert sorted(Job.objects.values_list("pk", flat=True)) == ["j0", "j1", "j2"]


def test_what_the_bulk_path_writes_is_what_a_create_writes():
    data = {"url": URL, "cron": "*/5 * * * 1-5", "timezone": "Asia/Shanghai", "headers": {"X": "1"}}
    with origin.origin("import"):
        services.job_create(data={"id": "one", **data})
        bulk.jobs_create_many([{"id": "many", **data}])
    one, many = (
        Job.objects.select_related("periodic_task").get(pk="one"),
        Job.objects.select_related("periodic_task").get(pk="many"),
    )
    for name in [*VERSIONED_FIELDS, "status", "next_run_at", "shown_target"]:
        if name not in ("id", "name"):
            assert getattr(one, name) == getattr(many, name), name
    assert one.periodic_task is not None
    assert many.periodic_task is not None
    assert (one.periodic_task.crontab, one.periodic_task.enabled) == (many.periodic_task.crontab, True)
    assert many.periodic_task.kwargs == '{"job_id": "many"}'
    version_one, version_many = JobVersion.objects.get(job_id="one"), JobVersion.objects.get(job_id="many")
    assert (version_many.number, version_many.action, version_many.actor, version_many.source) == (
        1,
        "create",
        "import",
        "import",
    )
    assert version_many.changed_fields == version_one.changed_fields
    assert list(AuditEntry.objects.filter(job_id="many").values_list("action", "source")) == [("create", "import")]


def test_an_id_used_by_a_deleted_job_goes_on_counting_its_versions():
    services.job_create(data={"id": "back", "url": URL, "interval_seconds": 60})
    services.job_delete(job=Job.objects.get(pk="back"))
    bulk.jobs_create_many([{"id": "back", "url": URL, "interval_seconds": 60}])
    assert list(JobVersion.objects.filter(job_id="back").order_by("number").values_list("number", "action")) == [
        (1, "create"), (2, "delete"), (3, "create"),
    ]  # fmt: skip


def test_an_existing_id_is_reported_and_its_job_left_as_it_was():
    services.job_create(data={"id": "j1", "url": URL, "interval_seconds": 60})
    results = bulk.jobs_create_many(entries(3))
    assert [r.ok for r in results] == [True, False, True]
    assert results[1].errors == {"id": ["A job with id 'j1' already exists."]}
    assert Job.objects.get(pk="j1").trigger == "interval"
    assert PeriodicTask.objects.get(name="crontask:j1").interval is not None


def test_a_batch_is_written_whole_or_not_at_all(monkeypatch):
    real = versions.insert_many
    calls = []

    def fails_on_the_second_batch(model, objs, *args, **kwargs):  # the versions' insert
        calls.append(len(objs))
        if len(calls) == 2:
            raise RuntimeError("the database went away")
        return real(model, objs, *args, **kwargs)

    monkeypatch.setattr(versions, "insert_many", fails_on_the_second_batch)
    with pytest.raises(RuntimeError):
        bulk.jobs_create_many(entries(5), batch_size=2)
    assert sorted(Job.objects.values_list("pk", flat=True)) == ["j0", "j1"]  # the first batch; none of the second
    assert sorted(PeriodicTask.objects.values_list("name", flat=True)) == ["crontask:j0", "crontask:j1"]
    assert JobVersion.objects.count() == 2


@pytest.mark.skipif(connection.vendor != "postgresql", reason="a second writer at once: PostgreSQL's row locks")
@pytest.mark.django_db(transaction=True)
def test_an_id_taken_while_the_batch_was_written_sends_that_batch_one_by_one(monkeypatch):
    real = bulk.periodic_tasks_for

    def someone_was_faster(jobs, *args, **kwargs):
        def other_process() -> None:
            try:
                services.job_create(data={"id": "j1", "url": URL, "interval_seconds": 60})
            finally:
                connection.close()

        writer = threading.Thread(target=other_process)
        writer.start()
        writer.join(timeout=30)
        assert not writer.is_alive()
        return real(jobs, *args, **kwargs)  # the batch looked before j1 was made: its insert fails

    monkeypatch.setattr(bulk, "periodic_tasks_for", someone_was_faster)
    results = bulk.jobs_create_many(entries(3))
    monkeypatch.undo()
    assert [r.ok for r in results] == [True, False, True]
    assert results[1].errors == {"id": ["A job with id 'j1' already exists."]}
    assert Job.objects.get(pk="j1").trigger == "interval"  # the other's
    assert PeriodicTask.objects.get(name="crontask:j1").interval is not None  # its task too
    assert JobVersion.objects.filter(job_id="j0").count() == 1
    assert JobVersion.objects.filter(job_id="j1").count() == 1


def test_shared_crontab_rows_are_found_in_one_query_and_made_once():
    CrontabSchedule.objects.create(
        minute="0", hour="*", day_of_month="*", month_of_year="*", day_of_week="*", timezone="Europe/Berlin"
    )
    bulk.jobs_create_many(entries(120))
    berlin = CrontabSchedule.objects.filter(timezone="Europe/Berlin")
    assert berlin.count() == 60
    assert Job.objects.filter(cron="0 * * * *").values("periodic_task__crontab").distinct().count() == 1


def test_the_import_creates_in_bulk_updates_the_others_and_reports_in_the_files_order():
    services.job_create(data={"id": "j1", "url": URL, "interval_seconds": 60})
    given = entries(3)
    given.insert(1, {"id": "bad", "url": URL, "cron": "nope"})
    given.append({"id": "j1", "url": URL, "interval_seconds": 0})  # an update, invalid
    summary = import_entries(given)
    assert (summary.created, summary.updated) == (2, 1)
    assert [item.label for item in summary.invalid] == ["bad", "j1"]


def test_a_dry_run_writes_nothing():
    summary = import_entries(entries(3), dry_run=True)
    assert summary.created == 3
    assert not Job.objects.exists()
    assert not PeriodicTask.objects.exists()


def test_integrity_errors_other_than_an_id_are_not_taken_for_one():
    error = IntegrityError("CHECK constraint failed: job_trigger_fields")
    assert not services.is_duplicate_id(error)


def test_tags_in_use_are_noted_as_a_create_notes_them():
    from jobs.tags import tags_in_use

    bulk.jobs_create_many([{"id": "t", "url": URL, "interval_seconds": 60, "tags": ["prod", "db"]}])
    assert tags_in_use() == ["db", "prod"]


def test_an_import_creates_jobs_that_run_after_new_ones_once_those_exist():
    given = [
        {"id": "report", "url": URL, "after": [{"job": "load", "on": "success"}]},  # before its upstream
        *entries(2),
        {"id": "load", "url": URL, "cron": "0 3 * * *"},
    ]
    summary = import_entries(given)
    assert (summary.created, summary.invalid) == (4, [])
    assert [r.status for r in summary.results] == ["created"] * 4
    assert list(Job.objects.get(pk="report").dependencies.values_list("upstream_id", "on")) == [("load", "success")]


def test_a_task_left_behind_is_taken_over_and_the_new_tasks_are_linked():
    """The bulk path streams the tasks whose names are free and updates one left by a job deleted
    outside the services: each job ends up linked to its own task, written as the job says."""
    every = IntervalSchedule.objects.create(every=77, period=IntervalSchedule.SECONDS)
    left = PeriodicTask.objects.create(name="crontask:j1", task="old.task", interval=every, enabled=False, one_off=True)
    results = bulk.jobs_create_many(
        [*entries(3), {"id": "paused", "url": URL, "interval_seconds": 9, "status": "paused"}]
    )
    assert all(r.ok for r in results)
    tasks: dict[str, PeriodicTask] = {}
    for job in Job.objects.select_related("periodic_task__crontab", "periodic_task__interval"):
        assert job.periodic_task is not None
        tasks[job.pk] = job.periodic_task
    assert tasks["j1"].pk == left.pk  # taken over, not duplicated
    assert PeriodicTask.objects.filter(name__startswith="crontask:").count() == 4
    for job_id, task in tasks.items():
        assert task.name == f"crontask:{job_id}"
        assert task.kwargs == f'{{"job_id": "{job_id}"}}'
        assert task.task == "runs.tasks.execute_job"
        assert task.enabled is (job_id != "paused")
        assert task.one_off is False
    minutes = {job_id: task.crontab.minute if task.crontab else None for job_id, task in tasks.items()}
    intervals = {job_id: task.interval.every if task.interval else None for job_id, task in tasks.items()}
    assert minutes == {"j0": "0", "j1": "1", "j2": "2", "paused": None}
    assert intervals == {"j0": None, "j1": None, "j2": None, "paused": 9}
