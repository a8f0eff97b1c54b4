"""Workflows: a job run after other jobs' runs (``Job.after``).

``after`` is a list of ``{"job": "<id>", "on": "success" | "failure" | "finish"}``. Its shape is
checked with the job's other rules (``after_problems``, from ``jobs.validators.validate_job``);
what needs the database (the upstream jobs exist, no cycle) is checked by ``check_after`` as a
job is prepared (``jobs.preparation``): the one validation path of the API, the admin and imports.

The edges are kept as ``JobDependency`` rows too (``dependencies_sync``, called by the job
services in the transaction that saves the job), which a finished run reads to find the jobs it
fires (``runs.dependencies``) and the graph (``job_graph``) walks. Deleting or pausing an upstream
job is allowed: its downstream jobs keep their ``after``, and say what they wait for.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, TypeVar

from django.core.exceptions import ValidationError
from django.db import connection
from django.utils.translation import gettext as _

from jobs.models import JOB_ID_PATTERN, Job, JobDependency

if TYPE_CHECKING:
    from collections.abc import Mapping

T = TypeVar("T")
# The advisory lock key of the saves that add workflow edges (any constant of our own).
EDGES_LOCK = 0x63745F6166746572  # "ct_after"
MAX_UPSTREAMS = 50
# How far the cycle check and the graph walk go: a chain longer than this is refused (cycle
# check) or shown cut (graph).
MAX_CHAIN_JOBS = 500
ON_VALUES = tuple(JobDependency.On.values)


def after_problems(job: Job) -> list[tuple[str, str]]:
    """What is wrong with ``after``, ``after_mode`` and ``after_window_seconds`` on their own
    (no query): the shape of each entry, one entry per upstream job, the window only with ``all``."""
    after = job.after
    if not isinstance(after, list):
        return [("after", _('Must be a list of {"job": "<id>", "on": "success" | "failure" | "finish"}.'))]
    if len(after) > MAX_UPSTREAMS:
        message = _("At most %(max)d upstream jobs; this lists %(n)d.")
        return [("after", message % {"max": MAX_UPSTREAMS, "n": len(after)})]
    problems: list[tuple[str, str]] = []
    seen: set[str] = set()
    for index, entry in enumerate(after):
        where = _("Entry %(n)d") % {"n": index}
        if not isinstance(entry, dict) or set(entry) != {"job", "on"}:
            message = _('%(where)s: give exactly "job" and "on", as {"job": "<id>", "on": "success"}.')
            problems.append(("after", message % {"where": where}))
            continue
        upstream, on = entry["job"], entry["on"]
        if not isinstance(upstream, str) or not re.match(JOB_ID_PATTERN, upstream):
            message = _("%(where)s: 'job' must be a job id, not %(given).60r.")
            problems.append(("after", message % {"where": where, "given": upstream}))
        elif upstream in seen:
            message = _("%(where)s: job %(job)r is listed twice; list each upstream job once.")
            problems.append(("after", message % {"where": where, "job": upstream}))
        else:
            seen.add(upstream)
        if on not in ON_VALUES:
            message = _("%(where)s: 'on' must be one of %(values)s, not %(given).60r.")
            problems.append(("after", message % {"where": where, "values": ", ".join(ON_VALUES), "given": on}))
    if job.after_window_seconds is not None and job.after_mode != Job.AfterMode.ALL:
        problems.append(("after_window_seconds", _("Only with after_mode 'all'; leave it empty.")))
    if job.after_mode == Job.AfterMode.ALL and not after:
        problems.append(("after_mode", _("'all' needs upstream jobs in 'after'.")))
    return problems


def upstream_ids(after: Any) -> list[str]:
    """The upstream job ids of a valid ``after``, in its order."""
    return [entry["job"] for entry in after] if isinstance(after, list) else []


def check_after(job: Job, *, stored: Job | None = None) -> None:
    """Refuse (ValidationError on ``after``) an upstream job that does not exist, and a cycle,
    naming it (``A → B → A``; a job after itself is one too). Upstream jobs the stored job already
    waited for may have been deleted since: they are not checked again."""
    ids = upstream_ids(job.after)
    if not ids:
        return
    if job.pk in ids:
        raise ValidationError({"after": _("A job cannot run after itself: %(id)s → %(id)s.") % {"id": job.pk}})
    known = set(upstream_ids(stored.after)) if stored is not None else set()
    new = [upstream for upstream in ids if upstream not in known]
    existing = set(Job.objects.filter(pk__in=new).values_list("pk", flat=True))
    missing = [upstream for upstream in new if upstream not in existing]
    if missing:
        raise ValidationError({"after": _("No job with id %(ids)s.") % {"ids": ", ".join(repr(m) for m in missing)}})
    cycle = find_cycle(job.pk, ids)
    if cycle is not None:
        raise ValidationError({"after": _("This makes a cycle: %(cycle)s.") % {"cycle": " → ".join(cycle)}})


def find_cycle(job_id: str, upstreams: Iterable[str]) -> list[str] | None:
    """The cycle ``job_id`` would close by running after ``upstreams``, in the direction runs
    flow (``[job_id, …, job_id]``), or None. Walks the stored edges upstream, breadth first.
    A chain with more than MAX_CHAIN_JOBS jobs upstream cannot be checked: ValidationError on
    ``after``."""
    parent: dict[str, str] = {}  # an upstream job -> the job that waits for it, on the way back to job_id
    frontier: deque[str] = deque()
    for upstream in upstreams:
        if upstream not in parent:
            parent[upstream] = job_id
            frontier.append(upstream)
    while frontier:
        batch = [frontier.popleft() for _ in range(len(frontier))]
        edges = (
            JobDependency.objects.filter(job_id__in=batch).exclude(job_id=job_id).values_list("job_id", "upstream_id")
        )
        for downstream, upstream in edges:
            if upstream == job_id:  # flow: job_id → downstream → … → job_id
                path = [downstream]
                while path[-1] != job_id:
                    path.append(parent[path[-1]])
                return [job_id, *path]
            if upstream not in parent:
                if len(parent) >= MAX_CHAIN_JOBS:
                    # Not walked to its end, a cycle could hide past the limit: refused, not passed.
                    raise ValidationError(
                        {
                            "after": _("This chain is too long to check for cycles: at most %(max)d jobs.")
                            % {"max": MAX_CHAIN_JOBS}
                        }
                    )
                parent[upstream] = downstream
                frontier.append(upstream)
    return None


def dependencies_sync(job: Job, *, new: bool = False) -> None:
    """Make ``job``'s ``JobDependency`` rows those of its ``after``. Called by the job services in
    the transaction that saves the job; adding an edge that closes a cycle (saved meanwhile by
    another request) is refused here too. ``new``: the job was just inserted (it has no rows)."""
    wanted = {entry["job"]: entry["on"] for entry in job.after} if isinstance(job.after, list) else {}
    if new and not wanted:
        return  # nothing to read or write: a create without ``after`` costs no statement here
    have = {} if new else {row.upstream_id: row for row in JobDependency.objects.filter(job=job)}
    if wanted.keys() - have.keys():
        # Two saves at once could each pass check_after and close a cycle together: edges are
        # added one save at a time, and the cycle checked again under that lock.
        _lock_edges()
        cycle = find_cycle(job.pk, wanted)
        if cycle is not None:
            raise ValidationError({"after": _("This makes a cycle: %(cycle)s.") % {"cycle": " → ".join(cycle)}})
    gone = [row.pk for upstream, row in have.items() if upstream not in wanted]
    if gone:
        JobDependency.objects.filter(pk__in=gone).delete()
    for upstream, on in wanted.items():
        row = have.get(upstream)
        if row is None:
            JobDependency.objects.create(job=job, upstream_id=upstream, on=on)
        elif row.on != on:
            JobDependency.objects.filter(pk=row.pk).update(on=on)


def upstream_first(entries: list[T]) -> list[T]:
    """``entries`` (an import's: job data, or entries that are not) in their order, except that an
    entry comes after the entries of the upstream jobs its ``after`` names: an export lists jobs by
    id, and a downstream job may sort before its upstream. Entries in a cycle keep their order."""
    ids = {entry.get("id"): n for n, entry in enumerate(entries) if isinstance(entry, dict) and entry.get("id")}

    def needs(n: int) -> list[int]:
        entry = entries[n]
        after = entry.get("after") if isinstance(entry, dict) else None
        wanted = [item.get("job") for item in after if isinstance(item, dict)] if isinstance(after, list) else []
        return [ids[job] for job in wanted if isinstance(job, str) and job in ids and ids[job] != n]

    ordered: list[int] = []
    placed: set[int] = set()
    visiting: set[int] = set()
    for start in range(len(entries)):
        stack = [(start, iter(needs(start)))]
        visiting.add(start)
        while stack:  # depth first, not recursive: a chain from an import can be long
            n, pending = stack[-1]
            child = next((c for c in pending if c not in placed and c not in visiting), None)
            if child is None:
                stack.pop()
                visiting.discard(n)
                if n not in placed:
                    placed.add(n)
                    ordered.append(n)
            else:
                visiting.add(child)
                stack.append((child, iter(needs(child))))
    return [entries[n] for n in ordered]


def _lock_edges() -> None:
    """Serialise the saves that add edges, until their transaction ends (PostgreSQL; SQLite writes
    one transaction at a time anyway)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [EDGES_LOCK])


# --- reading -----------------------------------------------------------------------------------


def job_graph(job: Job) -> dict[str, Any]:
    """The chain ``job`` is part of: every job connected to it through ``after``, either way
    (up to MAX_CHAIN_JOBS), as nodes and edges. An upstream job that was deleted is a node with
    ``"exists": false``. Edges run the way runs flow: ``{"from": upstream, "to": downstream, "on": …}``."""
    seen = {job.pk}
    frontier = [job.pk]
    edges: set[tuple[str, str, str]] = set()
    while frontier and len(seen) < MAX_CHAIN_JOBS:
        rows = JobDependency.objects.filter(job_id__in=frontier) | JobDependency.objects.filter(
            upstream_id__in=frontier
        )
        found = []
        for downstream, upstream, on in rows.values_list("job_id", "upstream_id", "on"):
            edges.add((upstream, downstream, on))
            for node in (upstream, downstream):
                if node not in seen:
                    seen.add(node)
                    found.append(node)
        frontier = found
    jobs = Job.objects.in_bulk(seen)
    nodes = [_node(node_id, jobs.get(node_id), current=job.pk) for node_id in sorted(seen)]
    shown = [
        {"from": upstream, "to": downstream, "on": on}
        for upstream, downstream, on in sorted(edges)
        if upstream in seen and downstream in seen
    ]
    return {
        "job": job.pk,
        "upstream": waits_for(job),
        "downstream": sorted({d for u, d, _ in edges if u == job.pk}),
        "nodes": nodes,
        "edges": shown,
        "truncated": len(seen) >= MAX_CHAIN_JOBS,
    }


def _node(node_id: str, job: Job | None, *, current: str) -> dict[str, Any]:
    if job is None:
        return {"id": node_id, "name": node_id, "exists": False, "status": None, "trigger": None, "current": False}
    return {
        "id": job.pk,
        "name": job.name,
        "exists": True,
        "status": job.status,
        "trigger": job.trigger,
        "current": job.pk == current,
    }


def waits_for(job: Job) -> list[dict[str, Any]]:
    """What ``job`` waits for, in its ``after`` order: each upstream job, on what, and whether it
    can fire it now (``"state"``: ``active``, ``paused``, ``completed`` or ``deleted``)."""
    ids = upstream_ids(job.after)
    statuses: Mapping[str, str] = dict(Job.objects.filter(pk__in=ids).values_list("pk", "status"))
    return [
        {"job": entry["job"], "on": entry["on"], "state": statuses.get(entry["job"], "deleted")} for entry in job.after
    ]


def downstream_of(job: Job) -> list[dict[str, str]]:
    """The jobs ``job``'s runs fire, by id, with what they wait for."""
    rows = JobDependency.objects.filter(upstream_id=job.pk).order_by("job_id")
    return [{"job": row.job_id, "on": row.on} for row in rows]
