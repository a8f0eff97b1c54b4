"""The benchmark's PostgreSQL databases: one it works in, and templates it restores between runs.

Both schedulers must start from the same rows, so each data set is built once, frozen as a
template database, and copied back (``CREATE DATABASE … TEMPLATE``, a file copy) before each run.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from urllib.parse import urlsplit, urlunsplit

import psycopg
from django.db import connection, connections, transaction
from django_celery_beat.models import PeriodicTask, PeriodicTasks

from jobs.models import Job
from jobs.triggers import cron_fires_after, get_zone

#: The work database's default name; the templates are named after it (``--db-prefix``). Another
#: name (``CRONTASK_BENCH_DATABASE``) lets two benchmarks share a server.
WORK = os.environ.get("CRONTASK_BENCH_DATABASE", "crontask_bench")


class Databases:
    def __init__(self, server_url: str, work: str = WORK) -> None:
        parts = urlsplit(server_url)
        self._server = parts
        self.work = work
        self.admin_dsn = urlunsplit(parts._replace(scheme="postgresql", path="/postgres"))
        self.work_url = urlunsplit(parts._replace(path=f"/{work}"))
        self.work_dsn = urlunsplit(parts._replace(scheme="postgresql", path=f"/{work}"))

    def _admin(self, sql: str) -> None:
        connections.close_all()  # DROP and TEMPLATE need the work database to have no sessions
        with psycopg.connect(self.admin_dsn, autocommit=True) as conn:
            conn.execute(sql)

    def recreate(self, template: str | None = None) -> None:
        self._admin(f'DROP DATABASE IF EXISTS "{self.work}" WITH (FORCE)')
        self._admin(f'CREATE DATABASE "{self.work}"' + (f' TEMPLATE "{template}"' if template else ""))

    def freeze(self, template: str) -> None:
        """Keep the work database as it is now under the name ``template``."""
        self.drop(template)
        self._admin(f'CREATE DATABASE "{template}" TEMPLATE "{self.work}"')

    def drop(self, name: str) -> None:
        self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def anchor_schedules(now: datetime) -> None:
    """Start both schedulers' clocks at ``now``, so they are asked for the same fires.

    The data set was built a while ago: crons whose next fire has passed would fire at once,
    and the stock scheduler counts intervals from each task's last run. So ours gets
    ``next_run_at`` = the first fire after now, and the stock one ``last_run_at`` = now.
    """
    rows = list(
        Job.objects.filter(status=Job.Status.ACTIVE, trigger__in=(Job.Trigger.CRON, Job.Trigger.INTERVAL)).values_list(
            "id", "cron", "timezone", "interval_seconds"
        )
    )
    crons: dict[tuple[str, str], datetime | None] = {}
    second = now.replace(microsecond=0)
    with transaction.atomic(), connection.cursor() as cursor:
        # One UPDATE joined to a temporary table: an UPDATE per schedule scans the table once per
        # schedule, which at 100,000 jobs takes the better part of an hour.
        cursor.execute("CREATE TEMPORARY TABLE bench_anchor (id text PRIMARY KEY, at timestamptz) ON COMMIT DROP")
        with cursor.cursor.copy("COPY bench_anchor (id, at) FROM STDIN") as copy:
            for job_id, cron, tz, every in rows:
                if every:
                    copy.write_row((job_id, second + timedelta(seconds=every)))
                    continue
                if (cron, tz) not in crons:
                    crons[(cron, tz)] = cron_fires_after(cron, get_zone(tz), now)
                copy.write_row((job_id, crons[(cron, tz)]))
        table = connection.ops.quote_name(Job._meta.db_table)
        cursor.execute(
            f"UPDATE {table} SET next_run_at = bench_anchor.at FROM bench_anchor WHERE {table}.id = bench_anchor.id"  # noqa: S608 (the model's own table name)
        )
        PeriodicTask.objects.filter(one_off=False).update(last_run_at=now)
    PeriodicTasks.update_changed()
