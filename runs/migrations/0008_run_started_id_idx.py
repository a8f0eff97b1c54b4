# The runs lists' closed started_at window (runs.selectors.started_window_ids) reads the ids of the
# window's runs from the index alone: run_started_idx (started_at) becomes (started_at, id), which
# serves every query the old one did. Built and dropped without locking the runs table on
# PostgreSQL (it may hold millions of rows), as 0003's and 0007's; the new one is built before the
# old one goes, so a started_at index is there all along.

from django.db import migrations, models


class AddIndexConcurrentlyOnPostgres(migrations.AddIndex):
    """AddIndex that does not lock the runs table on PostgreSQL while the index is built (the
    table may hold millions of rows); plain AddIndex elsewhere."""

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        model = to_state.apps.get_model(app_label, self.model_name)
        if not self.allow_migrate_model(schema_editor.connection.alias, model):
            return
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.add_index(model, self.index, concurrently=True)
        else:
            schema_editor.add_index(model, self.index)

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        model = from_state.apps.get_model(app_label, self.model_name)
        if not self.allow_migrate_model(schema_editor.connection.alias, model):
            return
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.remove_index(model, self.index, concurrently=True)
        else:
            schema_editor.remove_index(model, self.index)


class RemoveIndexConcurrentlyOnPostgres(migrations.RemoveIndex):
    """RemoveIndex that does not lock the runs table on PostgreSQL (DROP INDEX CONCURRENTLY; put
    back CONCURRENTLY too); plain RemoveIndex elsewhere."""

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        model = from_state.apps.get_model(app_label, self.model_name)
        if not self.allow_migrate_model(schema_editor.connection.alias, model):
            return
        index = from_state.models[app_label, self.model_name_lower].get_index_by_name(self.name)
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.remove_index(model, index, concurrently=True)
        else:
            schema_editor.remove_index(model, index)

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        model = to_state.apps.get_model(app_label, self.model_name)
        if not self.allow_migrate_model(schema_editor.connection.alias, model):
            return
        index = to_state.models[app_label, self.model_name_lower].get_index_by_name(self.name)
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.add_index(model, index, concurrently=True)
        else:
            schema_editor.add_index(model, index)


class Migration(migrations.Migration):
    atomic = False  # CREATE/DROP INDEX CONCURRENTLY cannot run in a transaction

    dependencies = [
        ("runs", "0007_run_queued_idx_for_retention"),
    ]

    operations = [
        AddIndexConcurrentlyOnPostgres(
            model_name="run",
            index=models.Index(fields=["started_at", "id"], name="run_started_id_idx"),
        ),
        RemoveIndexConcurrentlyOnPostgres(model_name="run", name="run_started_idx"),
    ]
