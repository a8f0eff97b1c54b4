"""Reads: the enabled rules that watch a job.

Every finished run asks (``alerts.evaluation``), so each process keeps the enabled rules for a
few seconds (``RULES_CACHE_SECONDS``): a run costs no query when no rule watches its job. A
change made through ``alerts.services`` clears the cache of the process that made it at once;
other processes see it within those seconds.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from django.db import DatabaseError, transaction

from alerts.models import AlertRule

logger = logging.getLogger(__name__)

RULES_CACHE_SECONDS = 5.0


@dataclass(frozen=True)
class WatchingRule:
    """What evaluating a run needs of a rule, without a query."""

    id: int
    name: str
    event: str
    threshold: int | None
    remind_every_seconds: int | None
    channel_ids: tuple[int, ...]
    job_ids: frozenset[str]  # the jobs it names
    tags: frozenset[str] = frozenset()  # and the jobs with any of these; neither: every job

    @property
    def every_job(self) -> bool:
        return not self.job_ids and not self.tags

    def watches(self, job_id: str, tags: Iterable[str] = ()) -> bool:
        """Whether it watches the job ``job_id`` whose tags are ``tags``."""
        return self.every_job or job_id in self.job_ids or not self.tags.isdisjoint(tags)

    def may_watch(self, job_id: str) -> bool:
        """``watches`` without the job's tags: True when it might (it has tags of its own)."""
        return self.every_job or job_id in self.job_ids or bool(self.tags)


class _Cache:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.rules: list[WatchingRule] | None = None
        self.loaded_at = 0.0
        self.generation = 0  # moved on by each change, so that a read begun before it is not kept


_cache = _Cache()


def enabled_rules() -> list[WatchingRule]:
    """Every enabled rule that has a channel, as loaded at most RULES_CACHE_SECONDS ago. Asked in a
    run's transaction: a load that fails is undone (a savepoint) and logged, and the rules loaded
    before (or none) stand until the next try."""
    return _rules() or []


def _rules() -> list[WatchingRule] | None:
    """``enabled_rules``, or None when they are not known: none loaded yet, and the load failed."""
    with _cache.lock:
        if _cache.rules is not None and time.monotonic() - _cache.loaded_at < RULES_CACHE_SECONDS:
            return _cache.rules
        generation, stale = _cache.generation, _cache.rules
    try:
        with transaction.atomic():
            rules = load_enabled_rules()
    except DatabaseError as exc:
        logger.warning("could not read the alert rules (those read before stand): %s", exc)
        return stale
    with _cache.lock:
        if _cache.generation == generation:  # else they changed while being read: read them again next time
            _cache.rules, _cache.loaded_at = rules, time.monotonic()
    return rules


def rules_watching(
    job_id: str, *, tags: Iterable[str] = (), events: frozenset[str] | None = None
) -> list[WatchingRule]:
    """The enabled rules that watch the job ``job_id`` with ``tags`` (of ``events``, if given)."""
    tags = frozenset(tags)
    return [rule for rule in enabled_rules() if rule.watches(job_id, tags) and (events is None or rule.event in events)]


def any_rule_may_watch(job_id: str) -> bool:
    """Whether an enabled rule watches ``job_id`` or, having tags, may: asked with the job's id
    alone (``runs.watchers``), before the job's tags are weighed (``rules_watching``). True while
    the rules are not known (none read yet, and reading them failed): a run's end is then told to
    the rules' watcher in its transaction, which reads them again, rather than passed over."""
    rules = _rules()
    return rules is None or any(rule.may_watch(job_id) for rule in rules)


def rules_changed() -> None:
    """Forget the cached rules: the next question reads them again."""
    with _cache.lock:
        _cache.rules = None
        _cache.generation += 1


def load_enabled_rules() -> list[WatchingRule]:
    """Every enabled rule that has a channel, read now (the sweep's; runs ask ``enabled_rules``)."""
    rules = list(AlertRule.objects.filter(enabled=True).order_by("id"))
    ids = [rule.pk for rule in rules]
    channels: dict[int, list[int]] = defaultdict(list)
    for rule_id, channel_id in AlertRule.channels.through.objects.filter(alertrule_id__in=ids).values_list(
        "alertrule_id", "channel_id"
    ):
        channels[rule_id].append(channel_id)
    jobs: dict[int, set[str]] = defaultdict(set)
    for rule_id, job_id in AlertRule.jobs.through.objects.filter(alertrule_id__in=ids).values_list(
        "alertrule_id", "job_id"
    ):
        jobs[rule_id].add(job_id)
    return [
        WatchingRule(
            id=rule.pk,
            name=rule.name,
            event=rule.event,
            threshold=rule.threshold,
            remind_every_seconds=rule.remind_every_seconds,
            channel_ids=tuple(sorted(channels[rule.pk])),
            job_ids=frozenset(jobs[rule.pk]),
            tags=frozenset(rule.tags or ()),
        )
        for rule in rules
        if channels[rule.pk]
    ]
