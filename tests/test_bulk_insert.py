"""``core.bulk_insert.insert_many``: rows as ``bulk_create`` writes them (COPY on PostgreSQL,
``bulk_create`` itself elsewhere), and a key taken is Django's IntegrityError, the whole insert undone."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from django.db import IntegrityError, connection, transaction
from django.test.utils import CaptureQueriesContext

from audit.models import AuditEntry
from core.bulk_insert import insert_many
from jobs.models import Job, JobVersion

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
        headers={"X-Quote": 'it\'s "quoted"\ttab\\back', "Ünï": "ç"},
        body="line 1\nline 2\\N",
        handler_kwargs={"nested": {"list": [1, 2.5, None, True]}},
        calendars=[],
        after=[],
        next_run_at=WHEN,
        status=Job.Status.PAUSED,
        max_concurrent=None,
    )


def test_the_rows_are_those_bulk_create_writes():
    insert_many(Job, [job("fast")])
    Job.objects.bulk_create([job("slow")])
    fast: dict[str, Any] = dict(Job.objects.filter(pk="fast").values().get())
    slow: dict[str, Any] = dict(Job.objects.filter(pk="slow").values().get())
    for name in ("id", "name", "created_at", "updated_at"):
        assert fast.pop(name) is not None
        slow.pop(name)
    assert fast == slow
    assert fast["headers"] == {"X-Quote": 'it\'s "quoted"\ttab\\back', "Ünï": "ç"}
    assert fast["body"] == "line 1\nline 2\\N"
    assert (fast["status"], fast["next_run_at"], fast["tags"]) == ("paused", WHEN, ["a", "b"])


def test_auto_now_fields_are_stamped_on_the_objects_too():
    made = [job("stamped")]
    insert_many(Job, made)
    assert made[0].created_at is not None
    assert Job.objects.get(pk="stamped").created_at == made[0].created_at


def test_auto_ids_are_the_databases():
    insert_many(
        JobVersion,
        [JobVersion(job_id="j", number=n, definition={"n": n}, changed_fields=["id"], action="create") for n in (1, 2)],
    )
    insert_many(AuditEntry, [AuditEntry(action="create", actor="import", source="import", job_id="j")])
    assert list(JobVersion.objects.order_by("number").values_list("number", "definition")) == [
        (1, {"n": 1}),
        (2, {"n": 2}),
    ]
    assert AuditEntry.objects.get().client_ip is None


def test_a_key_taken_is_an_integrity_error_and_nothing_of_the_insert_is_written():
    Job.objects.bulk_create([job("taken")])
    with pytest.raises(IntegrityError), transaction.atomic():
        insert_many(Job, [job("new"), job("taken")])
    assert list(Job.objects.values_list("pk", flat=True)) == ["taken"]


@pytest.mark.skipif(connection.vendor != "postgresql", reason="COPY is PostgreSQL's")
def test_postgresql_gets_no_insert_statement():
    with CaptureQueriesContext(connection) as queries:
        insert_many(Job, [job(f"j{n}") for n in range(3)])
    assert not [q for q in queries.captured_queries if q["sql"].lstrip().upper().startswith("INSERT")]
    assert Job.objects.count() == 3


def test_sqlite_falls_back_to_bulk_create(monkeypatch):
    calls = []
    real = Job.objects.bulk_create

    def counted(objs, *args, **kwargs):
        calls.append(len(objs))
        return real(objs, *args, **kwargs)

    monkeypatch.setattr(connection, "vendor", "sqlite")
    monkeypatch.setattr(Job._default_manager, "bulk_create", counted, raising=False)
    insert_many(Job, [job("a"), job("b")])
    assert calls == [2]
    assert sorted(Job.objects.values_list("pk", flat=True)) == ["a", "b"]
