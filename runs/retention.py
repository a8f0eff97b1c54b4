"""Deleting old runs: in batches, so a million rows never mean one long lock or one big load."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connections, transaction
from django.db.models import Count, ForeignObjectRel, Q, QuerySet
from django.utils import timezone
from django.utils.translation import gettext as _

from audit.services import audit_prune
from core.foreign_keys import nulled_by_database
from jobs import services as job_services
from jobs.handlers import allow_builtin_module, handler, handler_name, task_log
from jobs.models import Job
from jobs.tags import tags_rebuild
from jobs.versions import prune_deleted_versions
from runs.models import Run

BATCH_SIZE = 5000
_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw]?)\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "": 86400}


def parse_age(text: str) -> timedelta:
    """'30d', '12h', '90m', '3600s', '2w'; a bare number is days."""
    match = _DURATION.match(text)
    if not match:
        raise ValueError(_("%(text)r is not an age: use a number with s, m, h, d or w, such as 30d.") % {"text": text})
    return timedelta(seconds=int(match[1]) * _UNIT_SECONDS[match[2]])


@dataclass(frozen=True)
class OldRuns:
    total: int  # queued before the cutoff, in any status
    finished: int  # of those, the ones a cleanup may delete


def count_old_runs(*, older_than: timedelta, now: datetime | None = None) -> OldRuns:
    """How many runs are older than ``older_than``: what a cleanup looks at (one aggregate query)."""
    cutoff = (now or timezone.now()) - older_than
    counts = Run.objects.filter(queued_at__lt=cutoff).aggregate(
        total=Count("id"), finished=Count("id", filter=Q(status__in=Run.FINISHED))
    )
    return OldRuns(total=counts["total"], finished=counts["finished"])


def delete_old_runs(
    *,
    older_than: timedelta,
    keep_per_job: int = 0,
    batch_size: int = BATCH_SIZE,
    now: datetime | None = None,
    on_batch: Callable[[int], None] | None = None,
) -> int:
    """Delete finished runs older than ``older_than``, keeping each job's newest ``keep_per_job``.

    Batch by batch (ids first, then a DELETE by id, each batch its own short transaction), so each
    statement is short and nothing is loaded beyond one batch of ids. Returns how many runs were
    deleted.

    Without ``keep_per_job``, the batches go oldest first through the whole table along
    ``run_queued_idx`` (``queued_at``, ``id``): each batch is rows written together, on a few
    neighbouring pages, and the walk ends at the cutoff. (Job by job, a batch was one row on each
    of thousands of pages: two and a half times as slow at 10,000,000 runs.) With it, job by job:
    a job's newest N are found through ``run_job_recent_at_idx``.
    """
    cutoff = (now or timezone.now()) - older_than
    finished = Run.objects.filter(status__in=Run.FINISHED, queued_at__lt=cutoff)
    links = links_to_null()
    if not keep_per_job:
        return _delete_in_queued_order(finished, batch_size, on_batch, links)
    deleted = 0
    for job_id in finished.order_by().values_list("job_id", flat=True).distinct():
        newest = Run.objects.filter(job_id=job_id).order_by("-id").values_list("id", flat=True)
        kept_from = newest[keep_per_job - 1 : keep_per_job].first()
        if kept_from is None:
            continue  # the job has no more than keep_per_job runs
        candidates = finished.filter(job_id=job_id, id__lt=kept_from).order_by("id").values_list("id", flat=True)
        after = 0
        while ids := list(candidates.filter(id__gt=after)[:batch_size]):  # from the last batch on, not the start
            count = _delete_batch(ids, links)
            after = ids[-1]
            deleted += count
            if on_batch is not None:
                on_batch(count)
    return deleted


def _delete_in_queued_order(
    finished: QuerySet[Run], batch_size: int, on_batch: Callable[[int], None] | None, links: list[ForeignObjectRel]
) -> int:
    """Delete ``finished`` (old runs) oldest queued first, a batch at a time, each batch from where
    the last one ended (``queued_at`` at least the last one's: the deleted rows are gone, and the
    unfinished old runs left behind are not read again batch after batch)."""
    deleted = 0
    since = None
    while True:
        batch = finished.filter(queued_at__gte=since) if since is not None else finished
        rows = list(batch.order_by("queued_at", "id").values_list("id", "queued_at")[:batch_size])
        if not rows:
            return deleted
        ids = [run_id for run_id, _ in rows]
        since = rows[-1][1]
        count = _delete_batch(sorted(ids), links)
        deleted += count
        if on_batch is not None:
            on_batch(count)


def _delete_batch(ids: list[int], links: list[ForeignObjectRel]) -> int:
    """Delete these runs with a few statements, loading none of them.

    ``QuerySet.delete()`` would first SELECT every column of the batch (captured output, response
    bodies, tracebacks: up to megabytes a row) because the links to a run are SET_NULL and
    Django's collector works on instances. So each of ``links`` (``links_to_null``: those the
    database does not null itself) is nulled with one UPDATE, and the runs deleted by id.
    ``_raw_delete`` is the single DELETE that Django's own fast-delete path issues (the collector
    would also split it into statements of 100 ids).

    On PostgreSQL each statement takes the batch as one array (``= ANY(%s)``): Django's ``__in``
    writes one placeholder an id, and building and sending five statements of 5,000 placeholders
    a batch was a third of the time a cleanup took.
    """
    connection = connections[Run.objects.db]
    if connection.vendor != "postgresql":
        with transaction.atomic():
            for relation in links:
                name = relation.field.name
                relation.related_model._base_manager.filter(**{f"{name}__in": ids}).update(**{name: None})
            return Run.objects.filter(id__in=ids)._raw_delete(Run.objects.db)
    quote = connection.ops.quote_name
    with transaction.atomic(using=connection.alias), connection.cursor() as cursor:
        for relation in links:
            table = quote(relation.related_model._meta.db_table)
            column = quote(relation.field.get_attname_column()[1] or "")  # a foreign key always has one
            cursor.execute(f"UPDATE {table} SET {column} = NULL WHERE {column} = ANY(%s)", [ids])  # noqa: S608 (model names)
        cursor.execute(f"DELETE FROM {quote(Run._meta.db_table)} WHERE id = ANY(%s)", [ids])  # noqa: S608
        return cursor.rowcount


def links_to_null() -> list[ForeignObjectRel]:
    """The links to a run (``run_links``) that a cleanup nulls itself before it deletes: on
    PostgreSQL, those the database does not null itself. Each link's constraint there is ``ON
    DELETE SET NULL`` (``runs/0010``, ``alerts/0004``: ``core.foreign_keys``), which costs the
    database one look-up a deleted run, where the plain constraint Django writes cost two at the
    commit and the UPDATE one more (a million runs took about half the time); a link whose
    constraint lost its action (a later migration that alters the field writes it again without)
    is nulled here, as every link is on SQLite."""
    connection = connections[Run.objects.db]
    nulled = nulled_by_database(connection, Run._meta.db_table)
    return [
        relation
        for relation in run_links()
        if (relation.related_model._meta.db_table, relation.field.get_attname_column()[1]) not in nulled
    ]


def run_links() -> list[ForeignObjectRel]:
    """Every foreign key to a run, from any app, hidden ones (``related_name="+"``) included. Each
    is SET_NULL (a test holds every app to it): deleting a run only unlinks what pointed at it."""
    return [
        field
        for field in Run._meta.get_fields(include_hidden=True)
        if isinstance(field, ForeignObjectRel) and not field.many_to_many
    ]


def cleanup_kwargs_problems(kwargs: Mapping[str, object]) -> dict[str, str]:
    """What is wrong with the arguments of ``run_cleanup``: an age of zero or less would delete
    every run of every job (a bare ``older_than_days: 0`` once meant "the setting")."""
    problems = {}
    days = kwargs.get("older_than_days")
    if isinstance(days, int) and days < 1:
        problems["older_than_days"] = "must be at least 1 day; leave it out for CRONTASK_RUN_RETENTION_DAYS."
    keep = kwargs.get("keep_per_job")
    if isinstance(keep, int) and keep < 0:
        problems["keep_per_job"] = "must be 0 or more."
    return problems


@handler(validate=cleanup_kwargs_problems)
def run_cleanup(older_than_days: int | None = None, keep_per_job: int = 0) -> dict:
    """The system job ``cleanup-runs``: delete runs older than the retention (CRONTASK_RUN_RETENTION_DAYS).

    Its arguments are checked when a job is saved or run by hand, and again here, for kwargs that
    reached a run some other way (a job saved before the check, a row edited in the database).
    """
    days = settings.CRONTASK_RUN_RETENTION_DAYS if older_than_days is None else older_than_days
    problems = cleanup_kwargs_problems({"older_than_days": days, "keep_per_job": keep_per_job})
    if problems:
        raise ValueError(" ".join(f"{name} {message}" for name, message in problems.items()))
    deleted = delete_old_runs(
        older_than=timedelta(days=days),
        keep_per_job=keep_per_job,
        on_batch=lambda count: task_log(f"deleted a batch of {count} runs"),
    )
    task_log(f"done: {deleted} runs older than {days} days deleted")
    # The versions of jobs deleted longer ago than CRONTASK_VERSION_RETENTION_DAYS go too.
    versions_deleted = prune_deleted_versions()
    task_log(f"{versions_deleted} versions of jobs deleted long ago deleted")
    # And the audit entries older than CRONTASK_AUDIT_RETENTION_DAYS (``prune_audit`` does the same).
    audit_deleted = audit_prune()
    task_log(f"{audit_deleted} audit entries older than {settings.CRONTASK_AUDIT_RETENTION_DAYS} days deleted")
    # The admin's list of tags in use loses those no job has any more (jobs.models.JobTag).
    _, tags_dropped = tags_rebuild()
    return {
        "deleted": deleted, "older_than_days": days, "keep_per_job": keep_per_job, "versions_deleted": versions_deleted,
        "tags_dropped": tags_dropped, "audit_deleted": audit_deleted,
    }  # fmt: skip


#: The system job that runs ``run_cleanup`` (ensured by beat's start and ``sync_schedules``).
CLEANUP_JOB_ID = "cleanup-runs"
CLEANUP_JOB = {
    "name": "Clean up old runs",
    "description": (
        "Deletes runs older than CRONTASK_RUN_RETENTION_DAYS, in batches, the versions of jobs deleted "
        "more than CRONTASK_VERSION_RETENTION_DAYS ago, and audit entries older than CRONTASK_AUDIT_RETENTION_DAYS."
    ),
    "kind": Job.Kind.PYTHON,
    "handler": handler_name(run_cleanup),
    "cron": "17 3 * * *",
    "timeout_seconds": 3600,
}


def register() -> None:
    """Declare to jobs what the runs app brings: its cleanup handler (allowed whatever
    CRONTASK_HANDLER_PACKAGES says) and the system job that runs it. ``RunsConfig.ready`` calls this."""
    allow_builtin_module(__name__)
    job_services.register_system_job(CLEANUP_JOB_ID, CLEANUP_JOB)
