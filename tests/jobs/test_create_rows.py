"""What a create writes beside the job, now that it writes it in fewer statements (issue #23): the
version's number in the insert that records it, the shared schedule row found or made in one
statement (``jobs.beat_sync.shared_row``). The rows must be the ones the longer way wrote."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest
from django.db import connection
from django_celery_beat.models import ClockedSchedule, CrontabSchedule, IntervalSchedule, PeriodicTasks

from jobs import services
from jobs.models import VERSIONED_FIELDS, Job, JobVersion

pytestmark = pytest.mark.django_db

URL = "http://127.0.0.1:9/"
WHEN = "2099-01-01T00:00:00Z"


def numbers(job_id: str) -> list[tuple[int, str]]:
    return list(JobVersion.objects.filter(job_id=job_id).order_by("number").values_list("number", "action"))


# --- the version's number ---------------------------------------------------------------------


def test_a_create_after_a_delete_goes_on_numbering_with_every_field_changed(api, admin_user):
    assert api.post("/api/jobs/", {"id": "web", "url": URL, "cron": "*/5 * * * *"}, format="json").status_code == 201
    assert api.delete("/api/jobs/web/").status_code == 204
    assert api.post("/api/jobs/", {"id": "web", "url": URL, "interval_seconds": 60}, format="json").status_code == 201
    assert numbers("web") == [(1, "create"), (2, "delete"), (3, "create")]
    last = JobVersion.objects.get(job_id="web", number=3)
    assert last.changed_fields == list(VERSIONED_FIELDS)
    assert last.definition["interval_seconds"] == 60
    assert last.actor == admin_user.username
    assert last.source == "api"


def test_the_version_a_create_returns_is_the_row_written(api):
    job = services.job_create(data={"id": "web", "url": URL, "cron": "*/5 * * * *"})
    services.job_delete(job=job)
    restored = services.job_restore(job_id="web")
    assert numbers("web") == [(1, "create"), (2, "delete"), (3, "restore")]
    assert restored.status == Job.Status.PAUSED
    stored = JobVersion.objects.get(job_id="web", number=3)
    assert stored.changed_fields == list(VERSIONED_FIELDS)
    assert stored.definition["cron"] == "*/5 * * * *"


def test_a_create_over_a_job_removed_outside_the_services_compares_with_its_last_version():
    """No delete version to start again from (the row went without the services): the create is
    recorded as before, numbered after the last version, with the fields changed since it."""
    services.job_create(data={"id": "web", "url": URL, "cron": "*/5 * * * *"})
    Job.objects.filter(pk="web").delete()
    services.job_create(data={"id": "web", "url": URL, "cron": "*/10 * * * *"})
    assert numbers("web") == [(1, "create"), (2, "create")]
    assert JobVersion.objects.get(job_id="web", number=2).changed_fields == ["cron"]


@pytest.mark.skipif(connection.vendor != "postgresql", reason="two writers at once: PostgreSQL")
@pytest.mark.django_db(transaction=True)
def test_versions_stay_consecutive_with_creates_and_updates_at_once():
    services.job_create(data={"id": "web", "url": URL, "cron": "*/5 * * * *"})
    start = threading.Barrier(4)
    errors: list[BaseException] = []

    def update(minute: int) -> None:
        try:
            start.wait(timeout=10)
            job = Job.objects.get(pk="web")
            services.job_update(job=job, data={"cron": f"{minute} * * * *"})
        except BaseException as exc:  # noqa: BLE001 (reported below)
            errors.append(exc)
        finally:
            connection.close()

    def create(job_id: str) -> None:
        try:
            start.wait(timeout=10)
            services.job_create(data={"id": job_id, "url": URL, "run_at": WHEN})
        except BaseException as exc:  # noqa: BLE001 (reported below)
            errors.append(exc)
        finally:
            connection.close()

    threads = [
        threading.Thread(target=update, args=(1,)),
        threading.Thread(target=update, args=(2,)),
        threading.Thread(target=create, args=("one",)),
        threading.Thread(target=create, args=("two",)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []
    assert numbers("web") == [(1, "create"), (2, "update"), (3, "update")]
    assert numbers("one") == [(1, "create")]
    assert numbers("two") == [(1, "create")]
    # Both one-offs at the same time: one shared clocked row (or, made at the same instant, two;
    # each task on a row of that time).
    rows = {task for task in Job.objects.filter(pk__in=["one", "two"]).values_list("periodic_task__clocked", flat=True)}
    assert all(ClockedSchedule.objects.get(pk=pk).clocked_time == datetime(2099, 1, 1, tzinfo=UTC) for pk in rows)


# --- the shared schedule rows -----------------------------------------------------------------


def test_one_offs_at_the_same_time_share_their_clocked_row_and_another_time_has_its_own(api):
    for job_id, when in (("a", WHEN), ("b", WHEN), ("c", "2099-06-01T12:00:00+08:00")):
        body = {"id": job_id, "url": URL, "run_at": when}
        assert api.post("/api/jobs/", body, format="json").status_code == 201
    clocked = dict(Job.objects.values_list("pk", "periodic_task__clocked"))
    assert clocked["a"] is not None
    assert clocked["a"] == clocked["b"]
    times = dict(Job.objects.values_list("pk", "periodic_task__clocked__clocked_time"))
    assert times["a"] == datetime(2099, 1, 1, tzinfo=UTC)
    assert times["c"] == datetime(2099, 6, 1, 4, tzinfo=UTC)
    assert ClockedSchedule.objects.count() == 2
    assert set(Job.objects.values_list("periodic_task__one_off", flat=True)) == {True}


def test_a_schedule_row_made_twice_before_is_taken_by_its_lowest_id_not_refused(api):
    """The tables have no unique key: two creators at once may each have added a row. The first
    (lowest id) is taken; get_or_create failed on the two (MultipleObjectsReturned)."""
    when = datetime(2099, 1, 1, tzinfo=UTC)
    clocked = [ClockedSchedule.objects.create(clocked_time=when) for _ in range(2)]
    intervals = [IntervalSchedule.objects.create(every=60, period=IntervalSchedule.SECONDS) for _ in range(2)]
    assert api.post("/api/jobs/", {"id": "a", "url": URL, "run_at": WHEN}, format="json").status_code == 201
    assert api.post("/api/jobs/", {"id": "b", "url": URL, "interval_seconds": 60}, format="json").status_code == 201
    assert Job.objects.values_list("periodic_task__clocked", flat=True).get(pk="a") == clocked[0].pk
    assert Job.objects.values_list("periodic_task__interval", flat=True).get(pk="b") == intervals[0].pk
    assert (ClockedSchedule.objects.count(), IntervalSchedule.objects.count()) == (2, 2)


def test_shared_row_finds_the_row_it_made_and_makes_one_for_other_values():
    from jobs.beat_sync import shared_row

    fields = {"minute": "7", "hour": "3", "day_of_month": "*", "month_of_year": "*", "day_of_week": "2"}
    made = shared_row(CrontabSchedule, **fields, timezone="UTC")
    assert made.pk is not None
    assert not made._state.adding
    assert shared_row(CrontabSchedule, **fields, timezone="UTC").pk == made.pk
    other = shared_row(CrontabSchedule, **fields, timezone="Asia/Shanghai")
    assert other.pk != made.pk
    assert str(CrontabSchedule.objects.get(pk=other.pk).timezone) == "Asia/Shanghai"
    assert CrontabSchedule.objects.count() == 2


def test_a_create_tells_beat_by_moving_the_periodic_tasks_mark():
    PeriodicTasks.objects.update_or_create(ident=1, defaults={"last_update": datetime(2020, 1, 1, tzinfo=UTC)})
    services.job_create(data={"id": "told", "url": "http://127.0.0.1:9/", "cron": "*/5 * * * *"})
    mark = PeriodicTasks.objects.get(ident=1).last_update
    assert mark is not None
    assert mark > datetime(2020, 1, 1, tzinfo=UTC)
    assert PeriodicTasks.objects.count() == 1


def test_the_first_create_makes_the_periodic_tasks_mark():
    PeriodicTasks.objects.all().delete()
    services.job_create(data={"id": "first", "url": "http://127.0.0.1:9/", "interval_seconds": 60})
    assert PeriodicTasks.objects.filter(ident=1, last_update__isnull=False).count() == 1
