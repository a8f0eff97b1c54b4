"""Writing the audit trail: the services of the apps above call ``audit_record`` inside their own
transaction, so a change rolled back leaves no entry. Who, through what, from where and why come
from the origin the request or command set (``core.origin.current()``), not from the caller.

What each action's ``details`` hold (docs/contract.md, "Audit trail"): names, ids, counts; never a
value (a job's secrets are among its values).
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import DatabaseError
from django.utils import timezone

from audit.models import AuditEntry
from core import origin
from core.bulk_insert import insert_many
from core.rows import insert_row

logger = logging.getLogger(__name__)

_context: contextvars.ContextVar[Mapping[str, Any] | None] = contextvars.ContextVar("audit_context", default=None)


@contextmanager
def audit_context(**details: Any) -> Iterator[None]:
    """Add ``details`` to every entry recorded in this block: what the services it calls cannot
    know (``clone_of`` for the create a clone makes, ``bulk`` for each job of a bulk action)."""
    token = _context.set({**(_context.get() or {}), **details})
    try:
        yield
    finally:
        _context.reset(token)


def audit_record(
    *, action: str, job_id: str = "", run_id: int | None = None, details: Mapping[str, Any] | None = None
) -> AuditEntry:
    """Record ``action`` as done now by the current origin. Call it in the change's transaction."""
    made = origin.current()
    entry = AuditEntry(
        action=AuditEntry.Action(action),
        actor=made.actor_name[:150],
        source=made.source,
        client_ip=made.client_ip or None,
        reason=made.reason,
        job_id=job_id or "",
        run_id=run_id,
        details={**(_context.get() or {}), **(details or {})},
    )
    insert_row(entry)  # a new row only (append-only), as AuditEntry.save; its SQL built once (core.rows)
    return entry


def audit_record_many(*, action: str, job_ids: Iterable[str]) -> int:
    """``audit_record`` for many jobs at once (a bulk create: ``jobs.bulk``), one insert a batch."""
    made = origin.current()
    context = dict(_context.get() or {})
    now = timezone.now()
    entries = [
        AuditEntry(
            at=now,
            action=AuditEntry.Action(action),
            actor=made.actor_name[:150],
            source=made.source,
            client_ip=made.client_ip or None,
            reason=made.reason,
            job_id=job_id,
            details=context,
        )
        for job_id in job_ids
    ]
    insert_many(AuditEntry, entries)
    return len(entries)


def changed_fields(before: object, after: object, names: Iterable[str]) -> list[str]:
    """The names among ``names`` whose values differ between two versions of an object."""
    return [name for name in names if getattr(before, name) != getattr(after, name)]


def audit_changes(*, job_id: str, before: object, after: object, fields: Iterable[str]) -> AuditEntry | None:
    """Record an update of ``fields`` (their names only: a value may be a secret); nothing when
    none changed (a save with no change is no action)."""
    changed = changed_fields(before, after, fields)
    if not changed:
        return None
    return audit_record(action=AuditEntry.Action.UPDATE, job_id=job_id, details={"fields": changed})


def audit_refused_write(*, method: str, path: str, permission: str) -> None:
    """An API write refused (403) to a signed-in user, recorded on its own: the request's
    transaction, if it had one, has rolled back. Anonymous refusals are not recorded: anyone could
    fill the table with them (and there is no one to name)."""
    actor = origin.current().actor
    if actor is None or not getattr(actor, "is_authenticated", False):
        return
    details = {"method": method, "path": path[:500], "permission": permission[:500]}
    try:
        audit_record(action=AuditEntry.Action.PERMISSION_DENIED, details=details)
    except DatabaseError:  # the refusal stands (a 403, not a 500) even when it cannot be written
        logger.exception("audit: could not record a refused write method=%s path=%s", method, path)


def audit_prune(*, older_than_days: int | None = None) -> int:
    """Delete the entries older than ``older_than_days`` (CRONTASK_AUDIT_RETENTION_DAYS by default);
    returns how many. The one way entries leave: by age, never one by one."""
    days = settings.CRONTASK_AUDIT_RETENTION_DAYS if older_than_days is None else older_than_days
    if days < 1:
        raise ValueError("older_than_days must be at least 1")
    cutoff = timezone.now() - timedelta(days=days)
    old = AuditEntry.objects.filter(at__lt=cutoff)
    # The queryset refuses delete() (append-only); pruning by age deletes past it, on purpose.
    # AuditEntry has no relations or signals, so the raw delete misses nothing.
    return int(old._raw_delete(old.db))
