"""Foreign keys that PostgreSQL itself nulls when the row they point at is deleted.

Django's ``on_delete=SET_NULL`` is done by Django: its collector nulls the links with an UPDATE
before it deletes. The constraint it writes in the database is a plain check (``NO ACTION``,
deferred to the commit), and on PostgreSQL that check is two look-ups a deleted row a foreign key
(is the key back in the table? does a row still point at it?). For a table deleted a million rows
at a time (old runs), that check was half of the time. ``SetNullInDatabase`` makes the database's
constraint say what the model says, ``ON DELETE SET NULL``: one look-up a row, done at the end of
the DELETE itself (a referential action is never deferred), and no UPDATE needed beforehand.
Django's own deletes behave as before (they still null the links first; the database's action
then finds nothing to do).

A later migration that alters such a field (Django drops and writes its constraint again) would
drop the action; ``nulled_by_database`` reads what the database does, so a caller that relies on
it (``runs.retention``) nulls the others itself, and a test holds every link to a run to it.
"""

from __future__ import annotations

from typing import Any

from django.db import NotSupportedError, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.base.schema import BaseDatabaseSchemaEditor
from django.db.migrations.operations.base import Operation
from django.db.migrations.state import ProjectState


class SetNullInDatabase(Operation):
    """Make the foreign key ``model_name.name`` (a ``SET_NULL`` one) ``ON DELETE SET NULL`` in the
    PostgreSQL database; nothing elsewhere, and no change to the models' state.

    The constraint keeps its name and stays ``DEFERRABLE INITIALLY DEFERRED``, as Django writes it.
    It is dropped and added back in one ``ALTER TABLE`` (no moment without it), ``NOT VALID``, then
    validated by a statement of its own, which does not block writes while it reads the table. The
    ``ALTER TABLE`` needs an exclusive lock on both tables, for a moment; it waits for it at most
    ``LOCK_TIMEOUT`` (else every query of the table would queue behind it while it waits for a long
    transaction), and fails then: migrate again later. Only in a migration with ``atomic = False``
    (in one transaction, the exclusive lock would be held while the table is read). Reversed, the
    action is taken off the same way. (Django 6.0's ``on_delete=DB_SET_NULL`` says the same in the
    model, where a later ``AlterField`` keeps it: this operation can go once the project is on it.)
    """

    LOCK_TIMEOUT = "10s"

    reversible = True
    reduces_to_sql = False

    def __init__(self, model_name: str, name: str) -> None:
        self.model_name = model_name
        self.name = name

    def deconstruct(self) -> tuple[str, list[Any], dict[str, Any]]:
        return self.__class__.__name__, [], {"model_name": self.model_name, "name": self.name}

    def state_forwards(self, app_label: str, state: ProjectState) -> None:
        pass  # the model already says SET_NULL; only the database's constraint changes

    def database_forwards(
        self, app_label: str, schema_editor: BaseDatabaseSchemaEditor, from_state: ProjectState, to_state: ProjectState
    ) -> None:
        self._write(app_label, schema_editor, to_state, set_null=True)

    def database_backwards(
        self, app_label: str, schema_editor: BaseDatabaseSchemaEditor, from_state: ProjectState, to_state: ProjectState
    ) -> None:
        self._write(app_label, schema_editor, to_state, set_null=False)

    def describe(self) -> str:
        return f"Null {self.model_name}.{self.name} in the database when its target is deleted"

    @property
    def migration_name_fragment(self) -> str:
        return f"{self.model_name.lower()}_{self.name.lower()}_set_null_in_database"

    def _write(
        self, app_label: str, schema_editor: BaseDatabaseSchemaEditor, state: ProjectState, *, set_null: bool
    ) -> None:
        connection = schema_editor.connection
        model = state.apps.get_model(app_label, self.model_name)
        if connection.vendor != "postgresql" or not self.allow_migrate_model(connection.alias, model):
            return
        if schema_editor.atomic_migration:
            raise NotSupportedError("SetNullInDatabase runs in a migration with atomic = False (see its docstring)")
        field = model._meta.get_field(self.name)
        table, column = model._meta.db_table, field.column
        target = field.target_field
        to_table, to_column = target.model._meta.db_table, target.column
        with connection.cursor() as cursor:
            constraints = connection.introspection.get_constraints(cursor, table)
        names = [
            name
            for name, info in constraints.items()
            if info["foreign_key"] == (to_table, to_column) and info["columns"] == [column]
        ]
        if len(names) != 1:
            raise ValueError(f"found {len(names)} foreign key constraints on {table}.{column}, not one")
        [name] = names
        quote = schema_editor.quote_name
        action = " ON DELETE SET NULL" if set_null else ""
        with transaction.atomic(using=connection.alias):  # SET LOCAL: the lock's wait, for this statement
            schema_editor.execute(f"SET LOCAL lock_timeout = '{self.LOCK_TIMEOUT}'")
            schema_editor.execute(
                f"ALTER TABLE {quote(table)} DROP CONSTRAINT {quote(name)}, ADD CONSTRAINT {quote(name)}"
                f" FOREIGN KEY ({quote(column)}) REFERENCES {quote(to_table)} ({quote(to_column)}){action}"
                " DEFERRABLE INITIALLY DEFERRED NOT VALID"
            )
        schema_editor.execute(f"ALTER TABLE {quote(table)} VALIDATE CONSTRAINT {quote(name)}")


def nulled_by_database(connection: BaseDatabaseWrapper, table: str) -> set[tuple[str, str]]:
    """The (table, column) of each foreign key to ``table`` that the database nulls itself when a
    row of ``table`` is deleted (``ON DELETE SET NULL``); none but on PostgreSQL."""
    if connection.vendor != "postgresql":
        return set()
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT referring.relname, attribute.attname FROM pg_constraint AS fk"
            " JOIN pg_class AS referring ON referring.oid = fk.conrelid"
            " JOIN pg_attribute AS attribute ON attribute.attrelid = fk.conrelid AND attribute.attnum = fk.conkey[1]"
            " WHERE fk.contype = 'f' AND fk.confdeltype = 'n' AND cardinality(fk.conkey) = 1"
            " AND pg_table_is_visible(fk.conrelid)"
            " AND fk.confrelid = to_regclass(%s)",
            [connection.ops.quote_name(table)],
        )
        return {(referring, column) for referring, column in cursor.fetchall()}
