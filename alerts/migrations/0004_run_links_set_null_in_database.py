# The incidents' and notifications' links to runs are SET_NULL in the model; the database's
# constraints become ON DELETE SET NULL too (core.foreign_keys, as runs/0010 for the runs' own
# links), so deleting old runs (runs.retention) needs no UPDATE of these tables first. No change to
# the models.

from django.db import migrations

from core.foreign_keys import SetNullInDatabase


class Migration(migrations.Migration):
    atomic = False  # VALIDATE CONSTRAINT in a transaction of its own, not under the swap's lock

    dependencies = [
        ("alerts", "0003_alertrule_tags"),
        ("runs", "0010_run_links_set_null_in_database"),
    ]

    operations = [
        SetNullInDatabase(model_name="incident", name="first_run"),
        SetNullInDatabase(model_name="incident", name="last_run"),
        SetNullInDatabase(model_name="notification", name="run"),
    ]
