"""Creating many jobs at once: ``jobs_create_many``, the bulk path of ``import_jobs`` and
``POST /api/jobs/import/``.

Each entry is checked by the one validation path (``jobs.preparation.job_prepare``, as
``job_create`` does), and a bad one is reported by its place in the list without stopping the
others. The good entries are then written a batch at a time, in one transaction per batch: the
PeriodicTasks, the jobs, their first versions and their audit entries each in one ``COPY`` on
PostgreSQL (``core.bulk_insert.insert_many``; a few multi-row inserts elsewhere), and one change
bump for beat. A batch is written whole or not at all; nothing is ever
half-written.

The jobs' ``after`` edges and tags in use are written as ``job_create`` writes them. An id taken
since the batch looked (another process created it meanwhile) rolls the batch back,
and its entries are then created one by one through ``job_create``, so each is reported on its own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.utils.translation import gettext as _

from audit.services import audit_record_many
from core.bulk_insert import insert_many
from jobs import services
from jobs.beat_sync import ScheduleRows, periodic_task_name, periodic_tasks_for, schedules_changed
from jobs.dependencies import dependencies_sync
from jobs.errors import JobAlreadyExists, JobConflict
from jobs.memo import bulk_memo
from jobs.models import Job
from jobs.preparation import job_prepare
from jobs.tags import tags_record
from jobs.versions import versions_record_created

if TYPE_CHECKING:
    from jobs.preparation import Actor

BATCH_SIZE = 1000


@dataclass
class Created:
    """What became of one entry: ``job`` when it was created, else ``errors`` by field."""

    index: int
    job: Job | None = None
    errors: dict[str, list[str]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.job is not None


def jobs_create_many(
    entries: Sequence[Mapping[str, Any]],
    *,
    actor: Actor = None,
    batch_size: int = BATCH_SIZE,
    on_batch: Callable[[int], None] | None = None,
) -> list[Created]:
    """Create a job from each entry (``job_create``'s data), ``batch_size`` at a time; one result an
    entry, in order. Raises nothing for a bad entry: its result holds why. ``on_batch(n)`` is
    told of each batch done (its number of entries)."""
    results: list[Created] = []
    schedules = ScheduleRows()
    with bulk_memo():  # a cron, a zone, a host's egress decision...: checked once in this call
        for start in range(0, len(entries), batch_size):
            batch = entries[start : start + batch_size]
            results.extend(_create_batch(batch, start, actor, schedules))
            if on_batch is not None:
                on_batch(len(batch))
    return results


def entry_errors(exc: Exception) -> dict[str, list[str]]:
    """A refusal as the API words it: messages by field (``entry`` for one of no field)."""
    if isinstance(exc, ValidationError):
        return exc.message_dict if hasattr(exc, "error_dict") else {"entry": exc.messages}
    if isinstance(exc, JobConflict):
        return {getattr(exc, "field", None) or "id": [exc.message]}
    return {"entry": [str(exc)]}


def _create_batch(
    entries: Sequence[Mapping[str, Any]], offset: int, actor: Actor, schedules: ScheduleRows
) -> list[Created]:
    results = [Created(index=offset + n) for n in range(len(entries))]
    prepared: dict[str, tuple[Created, Job]] = {}
    for result, data in zip(results, entries, strict=True):
        try:
            job = job_prepare(data=data, actor=actor, check_id=False)
        except (ValidationError, JobConflict, PermissionDenied, TypeError, ValueError) as exc:
            result.errors = entry_errors(exc)
            continue
        if job.id in prepared:
            message = _("%(id)s is given twice in this list (entry %(number)d).") % {
                "id": repr(job.id),
                "number": prepared[job.id][0].index + 1,
            }
            result.errors = {"id": [message]}
            continue
        prepared[job.id] = (result, job)
    for job_id in Job.objects.filter(pk__in=list(prepared)).values_list("pk", flat=True):
        result, _job = prepared.pop(job_id)
        result.errors = entry_errors(JobAlreadyExists(job_id))
    if not prepared:
        return results
    try:
        _write([job for _result, job in prepared.values()], actor, schedules)
    except IntegrityError:
        # An id taken meanwhile (or a schedule row deleted): the batch rolled back, and with it any
        # schedule row it made, so the cache forgets them. Its entries go one by one.
        schedules.forget()
        for data, result in zip(entries, results, strict=True):
            if result.errors:
                continue
            try:
                result.job = services.job_create(data=data, actor=actor)
            except (ValidationError, JobConflict, PermissionDenied, TypeError, ValueError) as exc:
                result.errors = entry_errors(exc)
        return results
    for result, job in prepared.values():
        result.job = job
    return results


@transaction.atomic
def _write(jobs: list[Job], actor: Actor, schedules: ScheduleRows) -> None:
    tasks = {task.name: task for task in periodic_tasks_for(jobs, schedules, stream=True)}
    for job in jobs:
        job.periodic_task = tasks.get(periodic_task_name(job.id))
    if tasks:
        schedules_changed()
    insert_many(Job, jobs)
    for job in jobs:
        if job.after:  # few are: each job's edges as job_create writes them (jobs.dependencies)
            dependencies_sync(job, new=True)
    tags_record({tag for job in jobs for tag in job.tags})
    versions_record_created(jobs, actor=actor)
    audit_record_many(action="create", job_ids=_ids(jobs))


def _ids(jobs: Iterable[Job]) -> list[str]:
    return [job.pk for job in jobs]
