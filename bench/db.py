"""The benchmark's PostgreSQL databases: one it works in, and templates it restores between runs.

Both schedulers must start from the same rows, so each data set is built once, frozen as a
template database, and copied back (``CREATE DATABASE … TEMPLATE``, a file copy) before each run.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from urllib.parse import urlsplit, urlunsplit

import psycopg
from django.db import connections, transaction
from django_celery_beat.models import PeriodicTask, PeriodicTasks

from jobs.models import Job
from jobs.triggers import cron_fires_after, get_zone

WORK = "crontask_bench"


class Databases:
    def __init__(self, server_url: str) -> None:
        parts = urlsplit(server_url)
        self._server = parts
        self.admin_dsn = urlunsplit(parts._replace(scheme="postgresql", path="/postgres"))
        self.work_url = urlunsplit(parts._replace(path=f"/{WORK}"))
        self.work_dsn = urlunsplit(parts._replace(scheme="postgresql", path=f"/{WORK}"))

    def _admin(self, sql: str) -> None:
        connections.close_all()  # DROP and TEMPLATE need the work database to have no sessions
        with psycopg.connect(self.admin_dsn, autocommit=True) as conn:
            conn.execute(sql)

    def recreate(self, template: str | None = None) -> None:
        self._admin(f'DROP DATABASE IF EXISTS "{WORK}" WITH (FORCE)')
        self._admin(f'CREATE DATABASE "{WORK}"' + (f' TEMPLATE "{template}"' if template else ""))

    def freeze(self, template: str) -> None:
        """Keep the work database as it is now under the name ``template``."""
        self.drop(template)
        self._admin(f'CREATE DATABASE "{template}" TEMPLATE "{WORK}"')

    def drop(self, name: str) -> None:
        self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def anchor_schedules(now: datetime) -> None:
    """Start both schedulers' clocks at ``now``, so they are asked for the same fires.

    The data set was built a while ago: crons whose next fire has passed would fire at once,
    and the stock scheduler counts intervals from each task's last run. So ours gets
    ``next_run_at`` = the first fire after now, and the stock one ``last_run_at`` = now.
    """
    with transaction.atomic():
        rows = Job.objects.filter(status=Job.Status.ACTIVE, trigger=Job.Trigger.CRON).values_list(
            "id", "cron", "timezone"
        )
        by_schedule: dict[tuple[str, str], list[str]] = defaultdict(list)
        for job_id, cron, tz in rows.iterator(chunk_size=10_000):
            by_schedule[(cron, tz)].append(job_id)
        for (cron, tz), ids in by_schedule.items():
            following = cron_fires_after(cron, get_zone(tz), now)
            for start in range(0, len(ids), 10_000):
                Job.objects.filter(id__in=ids[start : start + 10_000]).update(next_run_at=following)
        for every in (
            Job.objects.filter(trigger=Job.Trigger.INTERVAL).values_list("interval_seconds", flat=True).distinct()
        ):
            Job.objects.filter(status=Job.Status.ACTIVE, trigger=Job.Trigger.INTERVAL, interval_seconds=every).update(
                next_run_at=now.replace(microsecond=0) + timedelta(seconds=every)
            )
        PeriodicTask.objects.filter(one_off=False).update(last_run_at=now)
    PeriodicTasks.update_changed()
