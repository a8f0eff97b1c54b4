"""One new row written in one statement whose SQL is built once a process: ``insert_row``
(``save``'s INSERT) and ``upsert_row`` (``bulk_create``'s with ``update_conflicts``); and many new
rows that differ in a few columns only: ``insert_columns`` (``bulk_create``'s with
``ignore_conflicts``).

``Model.save`` and ``QuerySet.bulk_create`` build their INSERT anew on every call (the query, its
compiler, a placeholder and a quoted name a column): for a job's create through the API (issue
#23), a quarter of the CPU of its writes. ``insert_row`` sends the statement they send, built once
a model (and conflict clause) with the backend's own pieces (``insert_statement``,
``on_conflict_suffix_sql``, ``return_insert_columns``); each value is prepared as they prepare it
(``pre_save``, which stamps ``auto_now`` fields on the object, then ``get_db_prep_save``: JSON,
time zones), and the database checks the row as any insert (an ``IntegrityError`` as ``save``
raises it). The object gets its id and is marked saved, as after ``save``.

PostgreSQL only. Elsewhere, and for what the statement does not cover (a model with parents or
``order_with_respect_to``, a primary key with a default, ``pre_save``/``post_save`` receivers that
``save`` would call, a value that is an expression, a returned column that is not an auto id), it
is the ORM's own call.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from django.db import connections, models, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models.constants import OnConflict
from django.db.models.signals import post_save, pre_save


@dataclass(frozen=True)
class _Statement:
    sql: str
    fields: tuple[models.Field, ...]
    returning: tuple[models.Field, ...]


@dataclass(frozen=True)
class _ColumnsStatement:
    sql: str
    fields: tuple[models.Field, ...]
    varying: tuple[models.Field, ...]


def insert_row(obj: models.Model, *, using: str = "default") -> None:
    """``obj.save(force_insert=True)``, the new ``obj``'s INSERT (its model's own ``save`` method aside)."""
    model = type(obj)
    if not _fast(model, using) or pre_save.has_listeners(model) or post_save.has_listeners(model):
        obj.save(force_insert=True, using=using)
        return
    obj._prepare_related_fields_for_save(operation_name="save")  # type: ignore[attr-defined]  # as save
    statement = _statement(model, using, obj.pk is not None, None, ())
    if not _write(obj, statement, using):
        obj.save(force_insert=True, using=using)


def upsert_row(obj: models.Model, *, unique_field: str, update_fields: Sequence[str], using: str = "default") -> None:
    """``bulk_create([obj], update_conflicts=True, unique_fields=[unique_field], update_fields=…)``
    for one new ``obj`` without an id: inserted, or the row that has its ``unique_field`` updated
    with ``update_fields``; ``obj`` gets that row's id."""
    model = type(obj)
    if _fast(model, using) and obj.pk is None:
        obj._prepare_related_fields_for_save(operation_name="bulk_create")  # type: ignore[attr-defined]  # as bulk_create
        if _write(obj, _statement(model, using, False, unique_field, tuple(update_fields)), using):
            return
    model._default_manager.db_manager(using).bulk_create(
        [obj], update_conflicts=True, unique_fields=[unique_field], update_fields=list(update_fields)
    )


@functools.cache
def _fast(model: type[models.Model], using: str) -> bool:
    """Whether ``_statement`` covers ``model``'s rows on ``using`` (receivers aside: asked each time)."""
    connection = connections[using]
    return (
        connection.vendor == "postgresql"
        and connection.features.can_return_columns_from_insert
        and not model._meta.parents
        and not model._meta.order_with_respect_to
        and model._meta.pk is not None
        # an auto id (the database's) or none; not a key's default, which save and bulk_create set first
        and (model._meta.pk is model._meta.auto_field or not model._meta.pk.has_default())
        and all(isinstance(field, models.AutoField) for field in model._meta.db_returning_fields)
        # a value written as ``%s``: not a field whose placeholder casts it (ArrayField, ranges)
        and not any(hasattr(field, "get_placeholder") for field in model._meta.concrete_fields)
    )


def _write(obj: models.Model, statement: _Statement, using: str) -> bool:
    """Run ``statement`` for ``obj``; False (nothing written) if a value is an expression."""
    raw = [field.pre_save(obj, True) for field in statement.fields]
    if any(hasattr(value, "resolve_expression") for value in raw):
        return False  # a DatabaseDefault, an F(): the compiler's to resolve
    connection = connections[using]
    values = [field.get_db_prep_save(value, connection) for field, value in zip(statement.fields, raw, strict=True)]
    with transaction.mark_for_rollback_on_error(using), connection.cursor() as cursor:  # as save
        cursor.execute(statement.sql, values)
        returned = cursor.fetchone() if statement.returning else None
    if returned is not None:
        for field, value in zip(statement.returning, returned, strict=True):
            setattr(obj, field.attname, value)
    obj._state.adding = False
    obj._state.db = using
    return True


@functools.cache
def _statement(
    model: type[models.Model], using: str, pk_set: bool, unique_field: str | None, update_fields: tuple[str, ...]
) -> _Statement:
    """The INSERT ``save`` (``unique_field`` None) or ``bulk_create`` with ``update_conflicts``
    sends for one row, as Django's compiler writes it on PostgreSQL."""
    meta = model._meta
    ops = connections[using].ops
    if unique_field is None:  # save's columns (Model._save_table)
        fields = [f for f in meta.local_concrete_fields if not f.generated and (pk_set or f is not meta.auto_field)]
        on_conflict = None
    else:  # bulk_create's for an object without an id
        fields = [f for f in meta.concrete_fields if not f.generated and not isinstance(f, models.AutoField)]
        on_conflict = OnConflict.UPDATE
    returning = tuple(meta.db_returning_fields)
    sql = [
        f"{ops.insert_statement(on_conflict=on_conflict)} {ops.quote_name(meta.db_table)}",
        f"({', '.join(ops.quote_name(str(f.column)) for f in fields)})",
        f"VALUES ({', '.join(['%s'] * len(fields))})",
    ]
    if unique_field is not None:
        sql.append(
            ops.on_conflict_suffix_sql(
                fields,
                on_conflict,
                [_column(model, name) for name in update_fields],
                [_column(model, unique_field)],
            )
        )
    returning_sql, _params = ops.return_insert_columns(list(returning))  # type: ignore[attr-defined]  # PostgreSQL's
    if returning_sql:
        sql.append(returning_sql)
    return _Statement(" ".join(sql), tuple(fields), returning)


def _base_type(field: models.Field, connection: BaseDatabaseWrapper) -> str:
    return str(field.cast_db_type(connection)).split("(")[0]


def _column(model: type[models.Model], name: str) -> str:
    return str(_field(model, name).column)  # never None: _field checks it


def _field(model: type[models.Model], name: str) -> models.Field:
    """``model``'s field with a column named ``name`` (its name or attname)."""
    field = model._meta.get_field(name)
    if not isinstance(field, models.Field) or field.column is None:
        raise ValueError(f"{model.__name__}.{name} is not a column")
    return field


def insert_columns(
    model: type[models.Model],
    *,
    same: Mapping[str, Any],
    each: Mapping[str, Sequence[Any]],
    using: str = "default",
) -> None:
    """``bulk_create([model(**same, **row) for row in rows], ignore_conflicts=True)``, the rows
    being ``each``'s columns taken a value at a time (every list as long): new rows with an auto id,
    alike but for the fields in ``each``, each left out if it conflicts with a row there already.

    Beat records a burst of fires this way (``scheduling.outbox``): ``bulk_create`` prepared every
    value of every row through its field (26 a run) and sent each column as an array, most of
    beat's CPU in a burst. Here the fields that are the same for all rows are prepared once, from
    one object made with ``same`` (defaults and ``auto_now`` as ``bulk_create`` has them), and sent
    once; only ``each``'s columns are arrays (``INSERT … SELECT … FROM UNNEST(…) ON CONFLICT DO
    NOTHING``). PostgreSQL, for a model ``insert_row`` covers; elsewhere ``bulk_create`` itself.

    A field's default is taken once for all the rows (a ``dict`` default: the same ``{}`` in each);
    a field whose default must differ by row (a ``uuid4``) must be given in ``each``. ``each``'s
    values are written as given: plain values, not expressions, not stamped by ``auto_now``.
    """
    if set(same) & set(each):
        raise ValueError(f"a field in both same and each: {sorted(set(same) & set(each))}")
    lengths = {len(values) for values in each.values()}
    if len(lengths) != 1:
        raise ValueError("every column of each must have a value for each row")
    (count,) = lengths
    if not count:
        return
    if _fast(model, using):
        statement = _columns_statement(model, using, tuple(each))
        template = model(**same)
        raw = [field.pre_save(template, True) for field in statement.fields]
        if not any(hasattr(value, "resolve_expression") for value in raw):  # else the compiler's to resolve
            connection = connections[using]
            params: list[Any] = [
                field.get_db_prep_save(value, connection) for field, value in zip(statement.fields, raw, strict=True)
            ]
            for field, values in zip(statement.varying, each.values(), strict=True):
                params.append([field.get_db_prep_save(value, connection) for value in values])
            with transaction.mark_for_rollback_on_error(using), connection.cursor() as cursor:
                cursor.execute(statement.sql, params)
            return
    rows = [model(**same, **{name: values[i] for name, values in each.items()}) for i in range(count)]
    model._default_manager.db_manager(using).bulk_create(rows, ignore_conflicts=True)


@functools.cache
def _columns_statement(model: type[models.Model], using: str, varying_names: tuple[str, ...]) -> _ColumnsStatement:
    """``insert_columns``' statement, with the fields that take one value for all rows (``fields``,
    in their placeholders' order) and those that take an array each (``varying``, in
    ``varying_names``' order, after them). Each value is cast to its column's type without its
    length (as Django's own ``UNNEST`` insert: a cast to ``varchar(n)`` would cut a longer value
    short, where the INSERT refuses it)."""
    connection = connections[using]
    meta, ops = model._meta, connection.ops
    fields = [f for f in meta.concrete_fields if not f.generated and not isinstance(f, models.AutoField)]
    varying = [_field(model, name) for name in varying_names]
    selected = [
        f"u.c{varying.index(field)}" if field in varying else f"%s::{_base_type(field, connection)}" for field in fields
    ]
    arrays = ", ".join(f"%s::{_base_type(field, connection)}[]" for field in varying)
    names = ", ".join(f"c{i}" for i in range(len(varying)))
    sql = " ".join(
        [
            f"{ops.insert_statement(on_conflict=OnConflict.IGNORE)} {ops.quote_name(meta.db_table)}",
            f"({', '.join(ops.quote_name(str(f.column)) for f in fields)})",
            # Only the model's own names and types: the values are parameters.
            f"SELECT {', '.join(selected)} FROM UNNEST({arrays}) AS u({names})",  # noqa: S608
            ops.on_conflict_suffix_sql(fields, OnConflict.IGNORE, [], []),
        ]
    )
    return _ColumnsStatement(sql, tuple(f for f in fields if f not in varying), tuple(varying))
