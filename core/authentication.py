"""The API's token authentication: DRF's ``TokenAuthentication``, its one query built once.

DRF looks a token up with ``Token.objects.select_related("user").get(key=key)`` on every request;
building that query (the join, the limit ``get`` adds, the compiler) cost more CPU than its round
trip, a tenth of a job's create through the API (issue #23). Here the same SELECT (the token and
its user, joined, by key) is written once a process and run on every request: nothing is cached
but the statement's text, so a token deleted or a user deactivated is refused on the next request.
What it does not find, or finds for an inactive user, DRF's own method answers (its errors, in
its words); on a database other than PostgreSQL it is DRF's method throughout.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.db import connections, models, router
from rest_framework import authentication


class TokenAuthentication(authentication.TokenAuthentication):
    def authenticate_credentials(self, key: str) -> tuple[Any, Any]:
        found = _token_and_user(self.get_model(), key)
        if found is None or not found[0].is_active:  # refused: by DRF, as always
            return super().authenticate_credentials(key)
        return found


@dataclass(frozen=True)
class _Select:
    sql: str
    token_names: tuple[str, ...]
    user_names: tuple[str, ...]
    converters: tuple[tuple[int, Callable[..., Any], Any], ...]  # (column, a field's from_db_value, its Col)
    relation: models.ForeignKey[Any, Any]  # the token's user (a OneToOneField in DRF's Token)
    key: models.Field[Any, Any]


def _token_and_user(model: type[models.Model], key: str) -> tuple[Any, Any] | None:
    """The user and token of ``key``, as DRF's query gives them (the token's ``user`` and the
    user's reverse one-to-one cached); None if there is no such token, or not on PostgreSQL."""
    using = router.db_for_read(model)
    connection = connections[using]
    if connection.vendor != "postgresql" or type(model._default_manager) is not models.Manager:
        return None  # DRF's query: a token model's own manager may leave tokens out (expired ones)
    select = _select(model, using)
    with connection.cursor() as cursor:
        cursor.execute(select.sql, [select.key.get_db_prep_value(key, connection, prepared=False)])
        row = cursor.fetchone()
    if row is None:
        return None
    values = list(row)
    for index, convert, column in select.converters:
        values[index] = convert(values[index], column, connection)
    split, relation = len(select.token_names), select.relation
    token = model.from_db(using, select.token_names, values[:split])
    user = relation.related_model.from_db(using, select.user_names, values[split:])
    relation.set_cached_value(token, user)
    if relation.one_to_one:  # as select_related: the user knows its token
        relation.remote_field.set_cached_value(user, token)
    return user, token


@functools.cache
def _select(model: type[models.Model], using: str) -> _Select:
    """``model.objects.select_related("user").get(key=…)``'s SELECT (without the LIMIT: the key is unique)."""
    quote = connections[using].ops.quote_name
    relation = model._meta.get_field("user")
    if not isinstance(relation, models.ForeignKey):
        raise TypeError(f"{model.__name__}.user is not a foreign key")
    user_model = relation.related_model
    token_table, user_table = quote(model._meta.db_table), quote(user_model._meta.db_table)
    token_fields, user_fields = model._meta.concrete_fields, user_model._meta.concrete_fields
    columns = [
        *(f"{token_table}.{quote(str(field.column))}" for field in token_fields),
        *(f"{user_table}.{quote(str(field.column))}" for field in user_fields),
    ]
    target, key = relation.target_field, model._meta.get_field("key")
    if not isinstance(key, models.Field):
        raise TypeError(f"{model.__name__}.key is not a field")
    sql = (
        f"SELECT {', '.join(columns)} FROM {token_table} INNER JOIN {user_table}"  # noqa: S608 (the models' own names)
        f" ON ({token_table}.{quote(str(relation.column))} = {user_table}.{quote(str(target.column))})"
        f" WHERE {token_table}.{quote(str(key.column))} = %s"
    )
    connection = connections[using]
    converters = tuple(
        (index, convert, field.get_col(field.model._meta.db_table))
        for index, field in enumerate([*token_fields, *user_fields])
        for convert in field.get_db_converters(connection)
    )
    return _Select(
        sql,
        tuple(field.attname for field in token_fields),
        tuple(field.attname for field in user_fields),
        converters,
        relation,
        key,
    )
