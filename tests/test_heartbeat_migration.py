"""The Heartbeat model moved from the project package (crontask) to the heartbeats app without
touching its table: a database migrated before the move keeps its rows, and the model's content
type and permissions follow it."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.contrib.contenttypes.models import ContentType
from django.core.management import call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from heartbeats.models import Heartbeat

TABLE = "crontask_heartbeat"
BEFORE_THE_MOVE = [("crontask", "0001_initial"), ("heartbeats", None)]


def migrate(targets: Sequence[tuple[str, str | None]]) -> None:
    executor = MigrationExecutor(connection)
    executor.migrate(list(targets))
    ContentType.objects.clear_cache()


def latest() -> list[tuple[str, str]]:
    return MigrationExecutor(connection).loader.graph.leaf_nodes()


def test_the_model_keeps_the_table_it_had():
    assert Heartbeat._meta.db_table == TABLE
    assert Heartbeat._meta.app_label == "heartbeats"


@pytest.mark.django_db(transaction=True)
def test_migrating_a_database_from_before_the_move_keeps_its_rows_and_changes_no_table():
    seen_at = timezone.now() - timedelta(seconds=3)
    new = latest()
    try:
        migrate(BEFORE_THE_MOVE)
        old_apps = MigrationExecutor(connection).loader.project_state(("crontask", "0001_initial")).apps
        with pytest.raises(LookupError):
            old_apps.get_model("heartbeats", "Heartbeat")
        old_apps.get_model("crontask", "Heartbeat").objects.create(
            name="beat", hostname="beat-host", pid=7, seen_at=seen_at
        )
        old_type = ContentType.objects.get(app_label="crontask", model="heartbeat")
        permissions = set(Permission.objects.filter(content_type=old_type).values_list("id", flat=True))
        assert len(permissions) == 4  # add, change, delete, view

        with CaptureQueriesContext(connection) as queries:
            migrate(new)
        assert [q["sql"] for q in queries if TABLE in q["sql"]] == []

        beat = Heartbeat.objects.get(name="beat")
        assert (beat.hostname, beat.pid, beat.seen_at) == ("beat-host", 7, seen_at)
        assert not ContentType.objects.filter(app_label="crontask", model="heartbeat").exists()
        new_type = ContentType.objects.get_for_model(Heartbeat)
        assert new_type.id == old_type.id
        assert set(Permission.objects.filter(content_type=new_type).values_list("id", flat=True)) == permissions
    finally:
        migrate(new)


@pytest.mark.django_db(transaction=True)  # sqlmigrate opens a schema editor: on SQLite, not inside a transaction
def test_the_moving_migrations_have_no_sql_of_their_own(capsys):
    for app, name in [("heartbeats", "0001_initial"), ("crontask", "0002_heartbeat_moved_to_heartbeats")]:
        call_command("sqlmigrate", app, name)
        assert TABLE not in capsys.readouterr().out, (app, name)
