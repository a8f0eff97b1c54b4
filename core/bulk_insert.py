"""Inserting many new rows at once, faster than ``QuerySet.bulk_create``: ``insert_many``.

``bulk_create`` spends most of a bulk import's write time in Python: it prepares each value of each
row through its field (``get_db_prep_save``), builds one statement of thousands of parameters and,
on PostgreSQL with Django 5.2, sends each column as an array (``UNNEST``) that psycopg quotes
value by value on the client. On PostgreSQL, ``insert_many`` streams the rows instead with
``COPY … FROM STDIN`` in one round trip, the values read straight from the objects (JSON fields
dumped by their encoder, ``auto_now`` fields stamped as ``save`` stamps them); the database checks
them as any insert (types, constraints, unique keys: an ``IntegrityError`` as ``bulk_create``
raises). Elsewhere (SQLite) it is ``bulk_create``.

It writes new rows only (no conflict handling) and does not set auto ids on the objects.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Callable, Sequence
from typing import Any

from django.db import connections, models
from django.db.models import Field

BATCH_SIZE = 1000


def insert_many(model: type[models.Model], objs: Sequence[models.Model], *, using: str = "default") -> None:
    """Insert ``objs`` (new, unsaved ``model`` instances) as ``bulk_create`` would, faster on PostgreSQL."""
    if not objs:
        return
    connection = connections[using]
    if connection.vendor != "postgresql":
        model._default_manager.db_manager(using).bulk_create(objs, batch_size=BATCH_SIZE)
        return
    fields = [
        field
        for field in model._meta.concrete_fields
        if not (field.primary_key and getattr(field, "db_returning", False))  # auto ids: the database's
    ]
    readers = [_reader(field) for field in fields]
    quote = connection.ops.quote_name
    columns = ", ".join(quote(field.column or field.attname) for field in fields)
    sql = f"COPY {quote(model._meta.db_table)} ({columns}) FROM STDIN"
    # The wrapper raises Django's errors (an IntegrityError for a key taken), as a query would.
    with connection.cursor() as cursor, connection.wrap_database_errors, cursor.cursor.copy(sql) as copy:
        for obj in objs:
            copy.write_row([read(obj) for read in readers])


def _reader(field: Field) -> Callable[[models.Model], Any]:
    """How to read ``field``'s value of an object as COPY's text format takes it."""
    attname = field.attname
    if getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False):
        return lambda obj: field.pre_save(obj, add=True)  # stamps the object too, as save does
    if isinstance(field, models.JSONField):
        encoder = field.encoder

        def read_json(obj: models.Model) -> str | None:
            value = getattr(obj, attname)
            return None if value is None else json.dumps(value, cls=encoder)

        return read_json

    def read(obj: models.Model) -> Any:
        value = getattr(obj, attname)
        return value.value if isinstance(value, enum.Enum) else value  # a choice: its stored value

    return read
