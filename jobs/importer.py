"""Import and export of jobs: JSON or YAML lists in the API's shape, and crontab files.

Every entry goes through jobs.services, and so through ``jobs.preparation.job_prepare``: an import
is validated exactly like an API call; one bad entry is reported and the rest go on. An export has
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
from typing import Any

import yaml
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.translation import gettext as _

from jobs import services
from jobs.dependencies import upstream_first
from jobs.errors import JobConflict
from jobs.models import EDITABLE_FIELDS, Job
from jobs.secrets import mask_job_data

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
class ImportSummary:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    invalid: list[Invalid] = field(default_factory=list)
    #: ("created" | "updated" | "unchanged", the job's id, where it came from), in the file's order.
    outcomes: list[tuple[str, str, str]] = field(default_factory=list)

    def line(self) -> str:
        return _("created %(created)d, updated %(updated)d, unchanged %(unchanged)d, invalid %(invalid)d") % {
            "created": self.created,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "invalid": len(self.invalid),
        }


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
) -> ImportSummary:
    """Upsert each entry by id, an upstream job before the jobs that run after it. Each entry commits
    on its own; a dry run rolls everything back."""
    summary = ImportSummary()
    with transaction.atomic() if dry_run else contextlib.nullcontext():
        for entry in upstream_first(list(entries)):
            _import_one(entry, summary)
            if on_progress is not None:
                on_progress()
        if dry_run:
            transaction.set_rollback(True)
    return summary


class _Unchanged(Exception):
    """Raised to roll back an update that changed nothing (so updated_at stays as it was)."""


def _import_one(entry: dict[str, Any] | Invalid, summary: ImportSummary) -> None:
    if isinstance(entry, Invalid):
        summary.invalid.append(entry)
        return
    label = entry.label if isinstance(entry, LocatedEntry) else str(entry.get("id") or entry.get("name") or "(no id)")
    try:
        with transaction.atomic():
            job = Job.objects.filter(pk=entry.get("id")).first() if entry.get("id") else None
            if job is None:
                created = services.job_create(data=_without_status_completed(entry))
                summary.created += 1
                summary.outcomes.append(("created", created.pk, label))
                return
            before = export_job(job, include_secrets=True)
            updated = services.job_update(job=job, data=_without_status_completed(entry))
            if export_job(updated, include_secrets=True) == before:
                raise _Unchanged
            summary.updated += 1
            summary.outcomes.append(("updated", job.pk, label))
    except _Unchanged:
        summary.unchanged += 1
        summary.outcomes.append(("unchanged", str(entry["id"]), label))
    except ValidationError as exc:
        reasons = exc.message_dict if hasattr(exc, "error_dict") else {"entry": exc.messages}
        summary.invalid.append(Invalid(label, "; ".join(f"{k}: {' '.join(v)}" for k, v in reasons.items())))
    except JobConflict as exc:
        summary.invalid.append(Invalid(label, exc.message))
    except (TypeError, ValueError) as exc:
        summary.invalid.append(Invalid(label, str(exc)))


def _without_status_completed(entry: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in entry.items() if not (k == "status" and v == Job.Status.COMPLETED)}


def _crontab_entry(line: str, number: int, env: dict[str, str], zone: str | None) -> dict[str, Any] | Invalid:
    parts = line.split(None, 1 if line.startswith("@") else 5)
    if line.startswith("@"):
        macro = parts[0].lower()
        if macro not in CRONTAB_MACROS:
            return Invalid(f"line {number}", f"{parts[0]} is not supported (only time macros such as @daily).")
        cron, command = CRONTAB_MACROS[macro], parts[1] if len(parts) > 1 else ""
    elif len(parts) == 6:
        cron, command = " ".join(parts[:5]), parts[5]
    else:
        return Invalid(f"line {number}", "Expected five schedule fields and a command.")
    if env:
        assignments = " ".join(f"{name}={_quote(value)}" for name, value in env.items())
        command = f"env {assignments} {command}"
    digest = hashlib.sha1(f"{cron} {command}".encode(), usedforsecurity=False).hexdigest()[:10]
    entry = {"id": f"crontab-{digest}", "name": command[:200], "kind": "shell", "cron": cron, "command": command}
    if zone:
        entry["timezone"] = zone
    return LocatedEntry(entry, label=f"line {number}")


def _quote(value: str) -> str:
    return value if re.fullmatch(r"[\w./:,+-]*", value) else "'" + value.replace("'", "'\\''") + "'"


def _parse(loader: Callable[[str], Any], text: str, kind: str) -> Any:
    try:
        return loader(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise ImportFormatError(f"Not valid {kind}: {exc}") from None


def _as_list(data: Any) -> list[dict[str, Any] | Invalid]:
    if isinstance(data, dict) and isinstance(data.get("jobs"), list):
        data = data["jobs"]
    if not isinstance(data, list):
        raise ImportFormatError('Expected a list of jobs (or {"jobs": [...]}).')
    return [
        item if isinstance(item, dict) else Invalid(f"entry {n}", "Not an object.") for n, item in enumerate(data, 1)
    ]
