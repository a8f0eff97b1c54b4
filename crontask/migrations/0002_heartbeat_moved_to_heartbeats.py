"""The Heartbeat model moved to the heartbeats app (heartbeats/migrations/0001_initial.py), which
now owns the table ``crontask_heartbeat``: it leaves this app's state only, and the table and its
rows stay as they are."""

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ("crontask", "0001_initial"),
        ("heartbeats", "0001_initial"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.DeleteModel(name="Heartbeat")],
            database_operations=[],
        ),
    ]
