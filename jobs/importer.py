"""Import and export of jobs: JSON or YAML lists in the API's shape, and crontab files.

Every entry goes through the job services (new ones through their bulk path, ``jobs.bulk``), and
so through ``jobs.preparation.job_prepare``: an import is validated exactly like an API call; one
bad entry is reported and the rest go on. An export has
the fields a client sets (``jobs.models.EDITABLE_FIELDS``), which an import gives back.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils.translation import gettext as _

from jobs import services
from jobs.bulk import entry_errors, jobs_create_many
from jobs.dependencies import upstream_first
from jobs.errors import JobConflict
from jobs.models import EDITABLE_FIELDS, Job
from jobs.secrets import mask_job_data

if TYPE_CHECKING:
    from jobs.preparation import Actor

CRONTAB_MACROS = {
    "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *", "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *",
}  # fmt: skip
# cron's own settings, not the commands' environment
CRONTAB_SETTINGS = {"MAILTO", "SHELL", "MAILFROM", "RANDOM_DELAY"}
_ASSIGNMENT = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)$")


class ImportFormatError(ValueError):
    """The file cannot be read as a list of jobs at all."""


@dataclass
class Invalid:
    label: str
    reason: str


class LocatedEntry(dict[str, Any]):
    """An entry that says where in its file it came from (``line 12`` of a crontab): an invalid
    one is reported by that, not by the id the import made up for it."""

    def __init__(self, data: dict[str, Any], *, label: str) -> None:
        super().__init__(data)
        self.label = label


@dataclass
class EntryResult:
    """What became of one entry: ``created``, ``updated``, ``unchanged`` or ``invalid`` (``errors``
    by field), by its place in the list (from 0)."""

    index: int
    id: str
    status: str
    errors: dict[str, list[str]] = field(default_factory=dict)


@dataclass
class ImportSummary:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    invalid: list[Invalid] = field(default_factory=list)
    results: list[EntryResult] = field(default_factory=list)
    #: ("created" | "updated" | "unchanged", the job's id, where it came from), in the file's order.
    outcomes: list[tuple[str, str, str]] = field(default_factory=list)

    def line(self) -> str:
        return _("created %(created)d, updated %(updated)d, unchanged %(unchanged)d, invalid %(invalid)d") % {
            "created": self.created,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "invalid": len(self.invalid),
        }

    def add(self, result: EntryResult, label: str, *, reason: str | None = None) -> None:
        """Count ``result``; an invalid one is reported as ``label``: ``reason`` (else its errors)."""
        self.results.append(result)
        if result.status == "invalid":
            shown = reason or "; ".join(f"{name}: {' '.join(messages)}" for name, messages in result.errors.items())
            self.invalid.append(Invalid(label, shown))
        else:
            setattr(self, result.status, getattr(self, result.status) + 1)
            self.outcomes.append((result.status, result.id, label))


def export_job(job: Job, *, include_secrets: bool = False) -> dict[str, Any]:
    """The job in the API's shape, its secrets masked unless ``include_secrets``. Imported back onto
    the same jobs, masked values keep the stored ones; onto no job, they are refused."""
    data = {name: _plain(getattr(job, name)) for name in EDITABLE_FIELDS}
    data["run_at"] = job.run_at.isoformat() if job.run_at else None
    if data["status"] == Job.Status.COMPLETED:
        data["status"] = Job.Status.PAUSED.value  # a finished one-off comes back paused, not re-armed
    return data if include_secrets else mask_job_data(data)


def _plain(value: Any) -> Any:
    """A choice's plain string: ``Job.Status.PAUSED`` is a ``str`` subclass, which JSON writes
    as a string but YAML's safe dumper refuses (RepresenterError)."""
    return str.__str__(value) if isinstance(value, str) and type(value) is not str else value


def load_entries(path: Path) -> list[dict[str, Any] | Invalid]:
    """The entries of a JSON, YAML or crontab file (by extension, else by content)."""
    text = path.read_text()
    suffix = path.suffix.lower()
    if suffix == ".json" or (not suffix and text.lstrip().startswith("[")):
        return _as_list(_parse(json.loads, text, "JSON"))
    if suffix in (".yaml", ".yml"):
        return _as_list(_parse(yaml.safe_load, text, "YAML"))
    return parse_crontab(text)


def parse_crontab(text: str) -> list[dict[str, Any] | Invalid]:
    """Crontab lines as shell jobs. ``VAR=value`` lines set the environment of the lines after them
    (``CRON_TZ`` their time zone); comments and blank lines are skipped."""
    entries: list[dict[str, Any] | Invalid] = []
    env: dict[str, str] = {}
    zone: str | None = None
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        assignment = _ASSIGNMENT.match(line)
        if assignment and not line.startswith(("@", "*")):
            name, value = assignment[1], assignment[2].strip().strip("'\"")
            if name in ("CRON_TZ", "TZ"):
                zone = value
            elif name not in CRONTAB_SETTINGS:
                env[name] = value
            continue
        entries.append(_crontab_entry(line, number, env, zone))
    return entries


def add_tags(entries: Iterable[dict[str, Any] | Invalid], tags: list[str]) -> list[dict[str, Any] | Invalid]:
    """Each entry with ``tags`` added to its own (``import_jobs --tag``: a crontab's lines have
    none). What a job ends up with is what its entry gives, checked as any entry is."""
    tagged: list[dict[str, Any] | Invalid] = []
    for entry in entries:
        if isinstance(entry, Invalid) or not tags:
            tagged.append(entry)
            continue
        own = entry.get("tags")
        data = {**entry, "tags": [*own, *tags] if isinstance(own, list) else (tags if own is None else own)}
        tagged.append(LocatedEntry(data, label=entry.label) if isinstance(entry, LocatedEntry) else data)
    return tagged


def import_entries(
    entries: Iterable[dict[str, Any] | Invalid],
    *,
    dry_run: bool = False,
    on_progress: Callable[[], None] | None = None,
    actor: Actor = None,
    may_update: bool = True,
) -> ImportSummary:
    """Upsert each entry by id: an entry that names an existing job updates it (each in its own
    transaction); the new ones are created in bulk (``jobs.bulk.jobs_create_many``: a batch at a
    time, each batch whole or not at all), but for those that run after other jobs (``after``),
    which are created one by one once the others are there, an upstream job before the jobs that
    run after it. Each entry's result is in the file's order; a dry run rolls everything back.
    ``may_update=False``: an entry naming an existing job is refused (an API client that may add
    jobs but not change them)."""
    outcomes: dict[int, tuple[EntryResult, str]] = {}
    with transaction.atomic() if dry_run else contextlib.nullcontext():
        listed = list(entries)
        existing = _existing_ids(listed)
        new: list[tuple[int, str, dict[str, Any]]] = []
        one_by_one: list[tuple[int, dict[str, Any]]] = []
        for index, entry in enumerate(listed):
            if isinstance(entry, Invalid):
                outcomes[index] = (EntryResult(index, "", "invalid", {"entry": [entry.reason]}), entry.label)
                _tick(on_progress)
            elif entry.get("id") in existing or entry.get("after"):
                one_by_one.append((index, entry))
            else:
                new.append((index, _label(entry), _without_status_completed(entry)))

        def batch_done(count: int) -> None:
            for _ in range(count):
                _tick(on_progress)

        created = jobs_create_many([data for _, _, data in new], actor=actor, on_batch=batch_done)
        for (index, label, data), made in zip(new, created, strict=True):
            job_id = made.job.pk if made.job is not None else str(data.get("id") or "")
            status = "created" if made.ok else "invalid"
            outcomes[index] = (EntryResult(index, job_id, status, made.errors), label)
        # Then updates and jobs that run after others, each upstream before its downstream ones.
        places = {id(entry): index for index, entry in one_by_one}
        for entry in upstream_first([entry for _, entry in one_by_one]):
            index = places[id(entry)]
            outcomes[index] = (_one(index, entry, actor, may_update, entry.get("id") in existing), _label(entry))
            _tick(on_progress)
        if dry_run:
            transaction.set_rollback(True)
    summary = ImportSummary()
    for index in sorted(outcomes):
        given = listed[index]
        summary.add(*outcomes[index], reason=given.reason if isinstance(given, Invalid) else None)
    return summary


def _tick(on_progress: Callable[[], None] | None) -> None:
    if on_progress is not None:
        on_progress()


def _existing_ids(entries: list[dict[str, Any] | Invalid]) -> set[str]:
    ids = [e["id"] for e in entries if isinstance(e, dict) and isinstance(e.get("id"), str) and e["id"]]
    found: set[str] = set()
    for start in range(0, len(ids), 10_000):  # bounded IN lists (SQLite's variable limit)
        found.update(Job.objects.filter(pk__in=ids[start : start + 10_000]).values_list("pk", flat=True))
    return found


def _label(entry: dict[str, Any]) -> str:
    """How an entry is named in the report: where it came from (``line 12`` of a crontab), else its id."""
    if isinstance(entry, LocatedEntry):
        return entry.label
    return str(entry.get("id") or entry.get("name") or _("(no id)"))


class _Unchanged(Exception):
    """Raised to roll back an update that changed nothing (so updated_at stays as it was)."""


def _one(index: int, entry: dict[str, Any], actor: Actor, may_update: bool, exists: bool) -> EntryResult:
    """An update of an existing job, or a create through ``job_create`` (a job that runs after others)."""
    job_id = str(entry.get("id") or "")
    if exists and not may_update:
        return EntryResult(
            index,
            job_id,
            "invalid",
            {"id": [_("A job with id %(id)s exists, and you may not change jobs.") % {"id": repr(job_id)}]},
        )
    try:
        with transaction.atomic():
            job = Job.objects.filter(pk=job_id).first() if job_id else None
            if job is None:  # new (or deleted since the import looked: made again)
                made = services.job_create(data=_without_status_completed(entry), actor=actor)
                return EntryResult(index, made.pk, "created")
            before = export_job(job, include_secrets=True)
            updated = services.job_update(job=job, data=_without_status_completed(entry), actor=actor)
            if export_job(updated, include_secrets=True) == before:
                raise _Unchanged
            return EntryResult(index, job_id, "updated")
    except _Unchanged:
        return EntryResult(index, job_id, "unchanged")
    except (ValidationError, JobConflict, PermissionDenied, TypeError, ValueError) as exc:
        return EntryResult(index, job_id, "invalid", entry_errors(exc))


def _without_status_completed(entry: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in entry.items() if not (k == "status" and v == Job.Status.COMPLETED)}


def _crontab_entry(line: str, number: int, env: dict[str, str], zone: str | None) -> dict[str, Any] | Invalid:
    where = _("line %(number)d") % {"number": number}
    parts = line.split(None, 1 if line.startswith("@") else 5)
    if line.startswith("@"):
        macro = parts[0].lower()
        if macro not in CRONTAB_MACROS:
            return Invalid(
                where, _("%(macro)s is not supported (only time macros such as @daily).") % {"macro": parts[0]}
            )
        cron, command = CRONTAB_MACROS[macro], parts[1] if len(parts) > 1 else ""
    elif len(parts) == 6:
        cron, command = " ".join(parts[:5]), parts[5]
    else:
        return Invalid(where, _("Expected five schedule fields and a command."))
    if env:
        assignments = " ".join(f"{name}={_quote(value)}" for name, value in env.items())
        command = f"env {assignments} {command}"
    digest = hashlib.sha1(f"{cron} {command}".encode(), usedforsecurity=False).hexdigest()[:10]
    entry = {"id": f"crontab-{digest}", "name": command[:200], "kind": "shell", "cron": cron, "command": command}
    if zone:
        entry["timezone"] = zone
    return LocatedEntry(entry, label=where)


def _quote(value: str) -> str:
    return value if re.fullmatch(r"[\w./:,+-]*", value) else "'" + value.replace("'", "'\\''") + "'"


def _parse(loader: Callable[[str], Any], text: str, kind: str) -> Any:
    try:
        return loader(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise ImportFormatError(_("Not valid %(format)s: %(error)s") % {"format": kind, "error": exc}) from None


def _as_list(data: Any) -> list[dict[str, Any] | Invalid]:
    if isinstance(data, dict) and isinstance(data.get("jobs"), list):
        data = data["jobs"]
    if not isinstance(data, list):
        raise ImportFormatError(_('Expected a list of jobs (or {"jobs": [...]}).'))
    return [
        item if isinstance(item, dict) else Invalid(_("entry %(number)d") % {"number": n}, _("Not an object."))
        for n, item in enumerate(data, 1)
    ]
