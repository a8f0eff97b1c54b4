# A run's links to other runs (a retry's retry_of, a dependency run's upstream_run) are SET_NULL in
# the model; the database's constraints become ON DELETE SET NULL too (core.foreign_keys), so
# deleting old runs (runs.retention) costs the database one look-up a run a link instead of two
# at the commit and an UPDATE. No change to the models. Not one transaction: each constraint is
# swapped in one brief ALTER TABLE, then validated without blocking writes to the runs table.

from django.db import migrations

from core.foreign_keys import SetNullInDatabase


class Migration(migrations.Migration):
    atomic = False  # VALIDATE CONSTRAINT in a transaction of its own, not under the swap's lock

    dependencies = [
        ("runs", "0009_run_job_recent_at_idx"),
    ]

    operations = [
        SetNullInDatabase(model_name="run", name="retry_of"),
        SetNullInDatabase(model_name="run", name="upstream_run"),
    ]
