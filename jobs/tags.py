"""Job tags: short labels (``prod``, ``team:billing``) to find jobs by and to aim alert rules at.

The rules of a tag list are here, and only here: ``jobs.preparation`` normalises a job's tags
(``normalise_tags``) and ``jobs.validators`` refuses what breaks a rule (``tag_problems``), so
the API, the admin form and an import refuse alike; the alert rules (``alerts.rules``) use both
for theirs. Tags are lowercased: ``Prod`` and ``prod`` are one tag, and a lookup matches the same
on PostgreSQL and SQLite (whose LIKE ignores case).

Queries: a job's tags are a JSON list, matched through its text (``"prod"``, quotes included,
which no tag can contain, so a match is a whole element), which works on both databases; a
JSON containment (``@>``) would be PostgreSQL's alone.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import reduce
from operator import and_, or_
from typing import Any

from django.core.exceptions import ValidationError
from django.db import connection
from django.db.models import Q, TextField
from django.db.models.functions import Cast
from django.db.models.lookups import Contains
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop, ngettext

from jobs.models import Job, JobTag

MAX_TAGS = 20
MAX_TAG_LENGTH = 50
TAG_PATTERN = re.compile(rf"[a-z0-9_.:-]{{1,{MAX_TAG_LENGTH}}}")  # after lowercasing
TAG_RULE = gettext_noop("1-%(n)d letters, digits, '-', '_', '.' or ':'")


def tag_rule() -> str:
    """What a tag is, in the request's language."""
    return _(TAG_RULE) % {"n": MAX_TAG_LENGTH}


# Beyond this many items a list is refused as it is, not deduplicated first: at most MAX_TAGS are kept.
_MAX_GIVEN = 1000


def normalise_tags(value: Any) -> Any:
    """A list of strings lowercased and deduplicated (first one kept, order kept); anything else
    as it is, for ``tag_problems`` to refuse."""
    if not isinstance(value, list | tuple) or len(value) > _MAX_GIVEN:
        return value
    if not all(isinstance(tag, str) for tag in value):
        return list(value)
    return list(dict.fromkeys(tag.lower() for tag in value))


def tag_problems(value: Any) -> list[str]:
    """What is wrong with a (normalised) tag list: each problem a sentence, none if it is fine."""
    if not isinstance(value, list):
        return [_('Give a list of tags (strings), such as ["prod", "team:billing"].')]
    if len(value) > MAX_TAGS:
        return [_("At most %(max)d tags; got %(n)d.") % {"max": MAX_TAGS, "n": len(value)}]
    bad = [tag for tag in value if not isinstance(tag, str) or not TAG_PATTERN.fullmatch(tag)]
    if bad:
        shown = ", ".join(repr(tag)[:60] for tag in bad[:5]) + (
            ngettext(" and %(n)d more", " and %(n)d more", len(bad) - 5) % {"n": len(bad) - 5} if len(bad) > 5 else ""
        )
        return [_("Not a tag: %(shown)s. A tag is %(rule)s.") % {"shown": shown, "rule": tag_rule()}]
    return []


def clean_tags(value: Any) -> list[str]:
    """``value`` as a valid tag list, or ValidationError (a list of the problems)."""
    tags = normalise_tags(value)
    problems = tag_problems(tags)
    if problems:
        raise ValidationError(problems)
    return list(tags)


def parse_tag_text(text: str) -> list[str]:
    """A form's text, ``prod, team:billing`` (commas or spaces between), as a list of tags."""
    return [tag for tag in re.split(r"[,\s]+", text) if tag]


def _has_tag(tag: str, field: str) -> Q:
    return Q(Contains(Cast(field, TextField()), f'"{tag.lower()}"'))


def has_all_tags(tags: Iterable[str], *, field: str = "tags") -> Q:
    """Jobs (or rows of another model with a tag list ``field``) that have every one of ``tags``."""
    return reduce(and_, (_has_tag(tag, field) for tag in tags), Q())


def has_any_tag(tags: Iterable[str], *, field: str = "tags") -> Q:
    """Rows that have at least one of ``tags``; none given: no row."""
    wanted = list(tags)
    if not wanted:
        return Q(pk__in=[])
    return reduce(or_, (_has_tag(tag, field) for tag in wanted))


def tags_record(tags: Iterable[str]) -> None:
    """Note ``tags`` as in use (``JobTag``): one INSERT that skips those already there."""
    JobTag.objects.bulk_create([JobTag(name=tag) for tag in tags], ignore_conflicts=True)


def tags_in_use(*, limit: int = 200) -> list[str]:
    """The tags jobs have (``JobTag``: kept by the services, rebuilt daily), sorted, at most ``limit``:
    the admin's filter, which must not read the whole job table on each page."""
    return list(JobTag.objects.order_by("name").values_list("name", flat=True)[:limit])


def tags_rebuild() -> tuple[int, int]:
    """Make ``JobTag`` the tags the jobs have now: those no job has any more are dropped, any
    missing added. Returns (added, dropped). Reads every job's tags: a daily job's, not a page's."""
    used = set(_distinct_tags())
    known = set(JobTag.objects.values_list("name", flat=True))
    JobTag.objects.filter(name__in=known - used).delete()
    tags_record(sorted(used - known))
    return len(used - known), len(known - used)


def _distinct_tags() -> list[str]:
    """The distinct tags of all jobs: one query that unnests the lists in the database."""
    if connection.vendor == "postgresql":
        sql = "SELECT DISTINCT t FROM jobs_job, jsonb_array_elements_text(jobs_job.tags) AS t"
    elif connection.vendor == "sqlite":
        sql = "SELECT DISTINCT j.value FROM jobs_job, json_each(jobs_job.tags) AS j"
    else:  # not a database Crontask is run on; correct, if slower
        return sorted({tag for tags in Job.objects.values_list("tags", flat=True) for tag in tags or []})
    with connection.cursor() as cursor:
        cursor.execute(sql)
        return [row[0] for row in cursor.fetchall()]
