"""An index on the PeriodicTasks that are not a job's, for beat's reload after each change.

Each change to a job tells beat that the PeriodicTasks changed (``jobs.beat_sync``), and beat
reloads the ones it schedules itself: those that are not a job's (``scheduling.scheduler``'s
``enabled_models_qs``), a handful. Without an index that reads the whole table, one row a job:
about 30 ms of the database at 100,000 jobs, 300 ms at 1,000,000. A partial index holds only
those few rows. SQLite reads such a condition too (partial indexes since 3.8).
"""

from django.db import migrations

EXECUTE_TASK = "runs.tasks.execute_job"  # jobs.beat_sync.EXECUTE_TASK, frozen as this migration wrote it


class Migration(migrations.Migration):
    dependencies = [
        ("django_celery_beat", "0019_alter_periodictasks_options"),
        ("jobs", "0016_job_jitter_dst_policy_paused_until_calendars"),
    ]

    operations = [
        migrations.RunSQL(
            sql=(
                "CREATE INDEX jobs_periodictask_not_job_idx ON django_celery_beat_periodictask (id) "
                f"WHERE task <> '{EXECUTE_TASK}'"
            ),
            reverse_sql="DROP INDEX jobs_periodictask_not_job_idx",
        ),
    ]
