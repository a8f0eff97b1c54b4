"""``core.rows``: one row's INSERT as ``save`` (``insert_row``) and ``bulk_create`` with
``update_conflicts`` (``upsert_row``) write it, the same statement and row, its SQL built once."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from django.db import IntegrityError, connection, transaction
from django.db.models.signals import pre_save
from django.test.utils import CaptureQueriesContext
from django_celery_beat.models import CrontabSchedule, PeriodicTask

from audit.models import AuditEntry
from core.rows import insert_row, upsert_row
from jobs.models import Job

pytestmark = pytest.mark.django_db

WHEN = datetime(2030, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)


def job(job_id: str) -> Job:
    return Job(
        id=job_id,
        name=f"name of {job_id}",
        tags=["a", "b"],
        trigger=Job.Trigger.CRON,
        cron="*/5 * * * *",
        timezone="Asia/Shanghai",
        url="http://127.0.0.1:9/",
        headers={"X-Quote": 'it\'s "quoted"', "Ünï": "ç"},
        handler_kwargs={"nested": {"list": [1, 2.5, None, True]}},
        calendars=[],
        after=[],
        next_run_at=WHEN,
        status=Job.Status.PAUSED,
        max_concurrent=None,
    )


def row(model: Any, pk: Any, *skip: str) -> dict[str, Any]:
    values = dict(model.objects.filter(pk=pk).values().get())
    for name in skip:
        values.pop(name)
    return values


def test_insert_row_writes_the_row_save_writes_and_marks_the_object_saved():
    fast, slow = job("fast"), job("slow")
    insert_row(fast)
    slow.save(force_insert=True)
    assert row(Job, "fast", "id", "name", "created_at", "updated_at") == row(
        Job, "slow", "id", "name", "created_at", "updated_at"
    )
    stored = Job.objects.get(pk="fast")
    assert (fast.created_at, fast.updated_at) == (stored.created_at, stored.updated_at)  # stamped as save stamps
    assert fast.created_at is not None
    assert (fast._state.adding, fast._state.db) == (False, "default")
    assert stored.headers == {"X-Quote": 'it\'s "quoted"', "Ünï": "ç"}


def test_insert_row_gives_an_auto_id_and_sends_what_save_sends():
    first = AuditEntry(action="create", actor="alice", source="api", job_id="a", details={"k": [1]})
    with CaptureQueriesContext(connection) as fast:
        insert_row(first)
    second = AuditEntry(action="create", actor="alice", source="api", job_id="a", details={"k": [1]})
    with CaptureQueriesContext(connection) as slow:
        second.save()
    assert first.pk is not None
    assert second.pk == first.pk + 1
    assert row(AuditEntry, first.pk, "id", "at") == row(AuditEntry, second.pk, "id", "at")
    assert [query["sql"].split(" VALUES ")[0] for query in fast] == [q["sql"].split(" VALUES ")[0] for q in slow]
    assert len(fast) == 1


def test_insert_row_refuses_a_taken_key_as_save_does_and_marks_the_transaction_for_rollback():
    insert_row(job("taken"))
    with transaction.atomic():
        with pytest.raises(IntegrityError):
            insert_row(job("taken"))
        assert transaction.get_rollback()  # as save: no query runs on in the broken transaction
    assert Job.objects.filter(pk="taken").count() == 1


def test_insert_row_is_save_for_a_model_with_save_receivers():
    seen: list[str] = []

    def receiver(sender: Any, instance: Job, **kwargs: Any) -> None:
        seen.append(instance.pk)

    pre_save.connect(receiver, sender=Job)
    try:
        insert_row(job("heard"))
    finally:
        pre_save.disconnect(receiver, sender=Job)
    assert seen == ["heard"]
    assert Job.objects.filter(pk="heard").exists()


def crontab() -> CrontabSchedule:
    return CrontabSchedule.objects.create(minute="*/5", hour="*", timezone="UTC")


def test_upsert_row_inserts_then_updates_the_row_of_that_name_keeping_its_id():
    schedule = crontab()
    first = PeriodicTask(name="crontask:x", task="a", crontab=schedule, enabled=True, kwargs="{}")
    upsert_row(first, unique_field="name", update_fields=["task", "enabled", "kwargs"])
    assert first.pk is not None
    second = PeriodicTask(name="crontask:x", task="b", crontab=schedule, enabled=False, kwargs='{"k": 1}')
    upsert_row(second, unique_field="name", update_fields=["task", "enabled", "kwargs"])
    assert second.pk == first.pk
    stored = PeriodicTask.objects.get(name="crontask:x")
    assert (stored.task, stored.enabled, stored.kwargs) == ("b", False, '{"k": 1}')
    assert PeriodicTask.objects.filter(name="crontask:x").count() == 1


def test_upsert_row_leaves_the_fields_not_named_as_they_were():
    schedule = crontab()
    upsert_row(
        PeriodicTask(name="crontask:y", task="a", crontab=schedule, description="first"),
        unique_field="name",
        update_fields=["task"],
    )
    upsert_row(
        PeriodicTask(name="crontask:y", task="b", crontab=schedule, description="second"),
        unique_field="name",
        update_fields=["task"],
    )
    stored = PeriodicTask.objects.get(name="crontask:y")
    assert (stored.task, stored.description) == ("b", "first")


def test_upsert_row_refuses_an_unsaved_related_row_as_bulk_create_does():
    with pytest.raises(ValueError, match="unsaved related object"):
        upsert_row(
            PeriodicTask(name="crontask:z", task="a", crontab=CrontabSchedule(minute="1")),
            unique_field="name",
            update_fields=["task"],
        )


def test_insert_row_is_save_for_a_model_with_a_field_whose_placeholder_casts_its_value(monkeypatch):
    from core import rows

    field_class = type(Job._meta.get_field("tags"))
    fast = rows._fast.__wrapped__  # _fast is asked once a model and database: not cached here
    assert fast(Job, "default") == (connection.vendor == "postgresql")
    # As an ArrayField or a range field has: the compiler writes ``%s::type[]``, not ``%s``.
    monkeypatch.setattr(field_class, "get_placeholder", lambda self, value, compiler, conn: "%s", raising=False)
    assert fast(Job, "default") is False
    rows._fast.cache_clear()
    try:
        insert_row(job("cast"))
    finally:
        rows._fast.cache_clear()
    assert Job.objects.filter(pk="cast").exists()


def without_id(values: Any) -> dict[str, Any]:
    return {name: value for name, value in values.items() if name != "id"}


def test_insert_columns_writes_the_rows_bulk_create_writes_ignoring_conflicts():
    from core.rows import insert_columns
    from runs.models import Run

    Job.objects.bulk_create([job("a"), job("b"), job("c")])
    same = {"trigger": Run.Trigger.SCHEDULED, "attempt": 1, "status": Run.Status.QUEUED, "sent_at": WHEN}
    at = [WHEN, WHEN.replace(minute=5), WHEN.replace(minute=6)]
    targets = ["GET http://a/", "", 'POST http://c/ "ü"']
    Run.objects.bulk_create(
        [
            Run(**same, job_id=job_id, scheduled_for=when, queued_at=when, target=target)
            for job_id, when, target in zip(["a", "b", "c"], at, targets, strict=True)
        ],
        ignore_conflicts=True,
    )
    expected = {(r["job_id"], r["scheduled_for"]): without_id(r) for r in Run.objects.values()}
    # The same fires again under other jobs' ids (new rows), and one that is there already (kept).
    Run.objects.filter(job_id="b").update(scheduled_for=WHEN.replace(minute=7), error="kept")
    kept = dict(Run.objects.filter(job_id="b").values().get())
    Run.objects.exclude(job_id="b").delete()
    with CaptureQueriesContext(connection) as queries:
        insert_columns(
            Run,
            same=same,
            each={
                "job_id": ["a", "b", "c"],
                "scheduled_for": [at[0], WHEN.replace(minute=7), at[2]],
                "queued_at": at,
                "target": targets,
            },
        )
    if connection.vendor == "postgresql":
        assert len(queries) == 1
        assert "ON CONFLICT DO NOTHING" in queries[0]["sql"]
    written = {(r["job_id"], r["scheduled_for"]): without_id(r) for r in Run.objects.exclude(job_id="b").values()}
    assert written == {key: value for key, value in expected.items() if key[0] != "b"}
    assert dict(Run.objects.filter(job_id="b").values().get()) == kept  # the conflicting row, as it was


def test_insert_columns_takes_lists_of_one_length():
    from core.rows import insert_columns
    from runs.models import Run

    with pytest.raises(ValueError, match="each row"):
        insert_columns(Run, same={}, each={"job_id": ["a"], "target": []})
    insert_columns(Run, same={}, each={"job_id": [], "target": []})  # nothing to write
    assert not Run.objects.exists()
    with pytest.raises(ValueError, match="both"):
        insert_columns(Run, same={"job_id": "a"}, each={"job_id": ["a"]})


@pytest.mark.skipif(connection.vendor != "postgresql", reason="SQLite does not hold a varchar to its length")
def test_insert_columns_refuses_a_value_too_long_for_its_column_as_an_insert_does():
    from django.db import DataError

    from core.rows import insert_columns
    from runs.models import Run

    Job.objects.bulk_create([job("a")])
    with pytest.raises(DataError), transaction.atomic():
        insert_columns(Run, same={"status": "x" * 50}, each={"job_id": ["a"]})
    with pytest.raises(DataError), transaction.atomic():
        insert_columns(Run, same={}, each={"job_id": ["a"], "worker": ["w" * 500]})
    assert not Run.objects.exists()
