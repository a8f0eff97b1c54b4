# Run.sent_at and the index of beat's outbox sweep (queued runs, oldest first).

from django.db import migrations, models


class AddIndexConcurrentlyOnPostgres(migrations.AddIndex):
    """AddIndex that does not lock the runs table on PostgreSQL while the index is built (the
    table may hold millions of rows); plain AddIndex elsewhere."""

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        model = to_state.apps.get_model(app_label, self.model_name)
        if not self.allow_migrate_model(schema_editor.connection.alias, model):
            return
        if schema_editor.connection.vendor == 'postgresql':
            schema_editor.add_index(model, self.index, concurrently=True)
        else:
            schema_editor.add_index(model, self.index)

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        model = from_state.apps.get_model(app_label, self.model_name)
        if not self.allow_migrate_model(schema_editor.connection.alias, model):
            return
        if schema_editor.connection.vendor == 'postgresql':
            schema_editor.remove_index(model, self.index, concurrently=True)
        else:
            schema_editor.remove_index(model, self.index)


class Migration(migrations.Migration):
    atomic = False  # CREATE INDEX CONCURRENTLY cannot run in a transaction

    dependencies = [
        ('jobs', '0004_job_id_pattern_end_of_string'),
        ('runs', '0002_retention_index'),
    ]

    operations = [
        migrations.AddField(
            model_name='run',
            name='sent_at',
            field=models.DateTimeField(blank=True, help_text='When its message was last handed to the broker; empty while it could not be (beat sends it when the broker is back).', null=True, verbose_name='sent at'),
        ),
        AddIndexConcurrentlyOnPostgres(
            model_name='run',
            index=models.Index(condition=models.Q(('status', 'queued')), fields=['queued_at'], name='run_waiting_idx'),
        ),
    ]
