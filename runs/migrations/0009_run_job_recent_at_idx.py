# A job's runs in a closed started_at window (runs.filters.RunFilter, after the window's ids are
# bounded) were counted by reading each run's row for its started_at: 4,320 rows for a busy job's
# day, 20 ms or more at 10,000,000 runs. run_job_recent_idx (job, -id) becomes
# run_job_recent_at_idx (job, -id) INCLUDE (started_at), which serves every query the old one did
# and counts such a window from the index alone. Built and dropped without locking the runs table
# on PostgreSQL, with 0008's operations; the new one is built before the old one goes.

from importlib import import_module

from django.db import migrations, models

concurrently = import_module("runs.migrations.0008_run_started_id_idx")


class Migration(migrations.Migration):
    atomic = False  # CREATE/DROP INDEX CONCURRENTLY cannot run in a transaction

    dependencies = [
        ("runs", "0008_run_started_id_idx"),
    ]

    operations = [
        concurrently.AddIndexConcurrentlyOnPostgres(
            model_name="run",
            index=models.Index(fields=["job", "-id"], include=["started_at"], name="run_job_recent_at_idx"),
        ),
        concurrently.RemoveIndexConcurrentlyOnPostgres(model_name="run", name="run_job_recent_idx"),
    ]
