"""The job's database constraints read in Python (``jobs.models.CONSTRAINTS_IN_PYTHON``, which
``job_prepare`` checks instead of a query per constraint) give the database's answer for every
combination of the values they read: they cannot drift apart unnoticed."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from typing import Any, cast

import pytest
from django.db.models import Field, Value

from jobs.models import CONSTRAINTS_IN_PYTHON, Job

pytestmark = pytest.mark.django_db

VALUES: dict[str, list[Any]] = {
    "trigger": ["cron", "interval", "date", "manual", "other"],
    "cron": ["", "* * * * *"],
    "interval_seconds": [None, 0, 5],
    "run_at": [None, datetime(2030, 1, 1, tzinfo=UTC)],
    "kind": ["http", "python", "shell", "other"],
    "url": ["", "http://x/"],
    "handler": ["", "scripts:x"],
    "command": ["", "true"],
    "status": ["active", "paused", "completed", "gone"],
    "timeout_seconds": [0, 1],
}


def test_every_constraint_of_the_model_is_read_in_python():
    assert {c.name for c in Job._meta.constraints} == set(CONSTRAINTS_IN_PYTHON)


@pytest.mark.parametrize("constraint", Job._meta.constraints, ids=lambda c: c.name)
def test_python_and_the_database_agree_on_every_combination(constraint):
    fields, holds = CONSTRAINTS_IN_PYTHON[constraint.name]
    names = sorted(fields)
    checked = 0
    for combination in itertools.product(*(VALUES[name] for name in names)):
        values = dict(zip(names, combination, strict=True))
        against = {
            name: Value(value, output_field=cast(Field, Job._meta.get_field(name))) for name, value in values.items()
        }
        in_database = constraint.condition.check(against)  # SELECT 1 WHERE COALESCE(<condition>, true)
        assert (holds(Job(**values)) is not False) == in_database, values
        checked += 1
    assert checked == len(list(itertools.product(*(VALUES[name] for name in names))))
