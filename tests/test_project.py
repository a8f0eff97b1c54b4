"""Project-level checks: migrations match the models, settings refuse bad values, first-start admin."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.db import connection

from core.env import envbool, envint, envrate
from crontask.bootstrap import ensure_admin_user


@pytest.mark.django_db
def test_the_migrations_match_the_models():
    call_command("makemigrations", "--check", "--dry-run", verbosity=0)


def test_bad_environment_values_stop_the_start(monkeypatch):
    monkeypatch.setenv("X_BOOL", "maybe")
    monkeypatch.setenv("X_INT", "ten")
    with pytest.raises(ImproperlyConfigured, match="X_BOOL"):
        envbool("X_BOOL", False)
    with pytest.raises(ImproperlyConfigured, match="X_INT"):
        envint("X_INT", 1)
    monkeypatch.setenv("X_INT", "0")
    with pytest.raises(ImproperlyConfigured, match="at least 1"):
        envint("X_INT", 5, minimum=1)
    monkeypatch.setenv("X_INT", "101")
    with pytest.raises(ImproperlyConfigured, match="at most 100"):
        envint("X_INT", 5, minimum=1, maximum=100)
    monkeypatch.setenv("X_BOOL", "True")
    assert envbool("X_BOOL", False) is True


@pytest.mark.django_db
def test_the_admin_is_created_once_with_a_generated_password():
    password = ensure_admin_user()
    assert password
    admin = get_user_model().objects.get(username="admin")
    assert admin.is_superuser
    assert admin.check_password(password)
    assert ensure_admin_user() is None  # never reset on the next start


@pytest.mark.django_db
def test_the_admin_password_can_come_from_the_environment():
    assert ensure_admin_user(password="chosen-Passw0rd") is None
    assert get_user_model().objects.get(username="admin").check_password("chosen-Passw0rd")


def test_the_embedded_database_lets_web_worker_and_beat_write_at_once(tmp_path):
    """With no DATABASE_URL: SQLite in WAL mode, writers waiting for the lock instead of failing."""
    code = (
        "import django, json; django.setup(); from django.db import connection; c = connection.cursor();"
        "c.execute('PRAGMA journal_mode'); mode = c.fetchone()[0];"
        "c.execute('PRAGMA busy_timeout'); wait = c.fetchone()[0];"
        "print(json.dumps([connection.vendor, mode, wait, connection.settings_dict['NAME']]))"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "CELERY_BROKER_URL")}
    env.update(CRONTASK_VAR_DIR=str(tmp_path), DJANGO_SETTINGS_MODULE="crontask.settings")
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, "-c", code], cwd=root, env=env, capture_output=True, text=True, check=True)
    vendor, mode, wait, name = json.loads(done.stdout.strip().splitlines()[-1])
    assert (vendor, mode) == ("sqlite", "wal")
    assert wait >= 10_000  # milliseconds
    assert Path(name).parent == tmp_path


@pytest.mark.parametrize(
    ("raw", "rate"), [("", ""), ("1000/hour", "1000/hour"), (" 3/Min ", "3/min"), ("10/s", "10/s"), ("5/days", "5/day")]
)
def test_a_throttle_rate_is_read_as_drf_reads_it(monkeypatch, raw, rate):
    monkeypatch.setenv("X_RATE", raw)
    assert envrate("X_RATE") == rate


@pytest.mark.parametrize("raw", ["1000", "often", "0/hour", "10/fortnight", "-1/s", "1.5/min"])
def test_a_bad_throttle_rate_stops_the_start(monkeypatch, raw):
    monkeypatch.setenv("X_RATE", raw)
    with pytest.raises(ImproperlyConfigured, match="X_RATE"):
        envrate("X_RATE")


def settings_in_a_new_process(tmp_path: Path, code: str, **env: str) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("CRONTASK_API_THROTTLE")}
    environ.update(CRONTASK_VAR_DIR=str(tmp_path), DJANGO_SETTINGS_MODULE="crontask.settings", **env)
    code = f"import django, json; django.setup(); from django.conf import settings; print(json.dumps({code}))"
    root = Path(__file__).resolve().parents[1]
    return subprocess.run([sys.executable, "-c", code], cwd=root, env=environ, capture_output=True, text=True)


def test_the_rate_limits_and_their_cache_come_from_the_environment(tmp_path):
    done = settings_in_a_new_process(
        tmp_path,
        "[settings.CRONTASK_API_THROTTLE_USER, settings.CRONTASK_API_THROTTLE_ANON, settings.CACHES['default']]",
        CRONTASK_API_THROTTLE_USER="1000/hour",
        CRONTASK_API_THROTTLE_ANON="60/min",
        CRONTASK_CACHE_URL="redis://127.0.0.1:6379/14",
    )
    assert done.returncode == 0, done.stderr
    user, anon, cache = json.loads(done.stdout.strip().splitlines()[-1])
    assert (user, anon) == ("1000/hour", "60/min")
    assert cache == {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": "redis://127.0.0.1:6379/14"}
    bad = settings_in_a_new_process(tmp_path, "1", CRONTASK_API_THROTTLE_ANON="lots")
    assert bad.returncode != 0
    assert "ImproperlyConfigured: CRONTASK_API_THROTTLE_ANON must be a rate" in bad.stderr


# PostgreSQL with DATABASE_PREPARED_STATEMENTS (the default).
binds_on_the_server = pytest.mark.skipif(
    connection.vendor != "postgresql" or connection.settings_dict["OPTIONS"].get("server_side_binding") is not True,
    reason="PostgreSQL with server-side binding and prepared statements (DATABASE_PREPARED_STATEMENTS)",
)


def test_postgresql_statements_are_bound_on_the_server_and_prepared_unless_turned_off(tmp_path, monkeypatch):
    monkeypatch.delenv("DATABASE_PREPARED_STATEMENTS", raising=False)  # the default
    url = "postgres://u@db.invalid:5432/crontask"
    options = "settings.DATABASES['default']['OPTIONS']"
    done = settings_in_a_new_process(tmp_path, options, DATABASE_URL=url)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {
        "connect_timeout": 5, "server_side_binding": True, "prepare_threshold": 5
    }  # fmt: skip
    done = settings_in_a_new_process(tmp_path, options, DATABASE_URL=url, DATABASE_PREPARED_STATEMENTS="false")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {"connect_timeout": 5}  # Django's defaults: neither
    # The URL's own options win.
    done = settings_in_a_new_process(tmp_path, options, DATABASE_URL=f"{url}?prepare_threshold=20")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1])["prepare_threshold"] == 20


def _prepared_statements() -> list[str]:
    """The statements this test's connection has prepared on the server."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        return [row[0] for row in cursor.fetchall()]


@pytest.mark.django_db
@binds_on_the_server
def test_a_statement_a_connection_sends_often_is_prepared_there():
    from jobs.models import Job

    for n in range(6):  # sent 5 times, then prepared (psycopg's prepare_threshold)
        assert list(Job.objects.filter(pk=f"job-{n}")) == []  # the same statement, other values
    assert any('FROM "jobs_job"' in statement and "$1" in statement for statement in _prepared_statements())


@pytest.mark.django_db
@binds_on_the_server
def test_a_batch_statement_is_never_prepared_so_it_is_planned_for_the_table_as_it_grows():
    # Prepared, a batch's look-up (as jobs.bulk checks 1,000 ids at a time) ran on a generic plan
    # made while an import's first batches were all the table held: a sequential scan per batch.
    from core.prepared_statements import PREPARED_AT_MOST_VALUES
    from jobs.models import Job

    batch = PREPARED_AT_MOST_VALUES + 1
    for n in range(8):
        assert list(Job.objects.filter(pk__in=[f"job-{n}-{i}" for i in range(batch)])) == []
    assert not any(f"${batch}" in statement for statement in _prepared_statements())
    for n in range(6):  # one of 100 values still is, after 5 sends (a single row has at most 47)
        assert list(Job.objects.filter(pk__in=[f"job-{n}-{i}" for i in range(PREPARED_AT_MOST_VALUES)])) == []
    assert any(f"${PREPARED_AT_MOST_VALUES}" in statement for statement in _prepared_statements())


@pytest.mark.django_db(transaction=True)
@binds_on_the_server
def test_a_connection_whose_prepared_statement_a_migration_broke_is_renewed():
    import psycopg
    from django.db import OperationalError, close_old_connections

    from core.outage import retrying

    def read() -> list[tuple[str]]:
        with connection.cursor() as cursor:
            cursor.execute("SELECT v FROM prepared_probe WHERE v <> %s", ["-"])
            return cursor.fetchall()

    def migrate(length: int) -> None:
        # What a migration of the next release does meanwhile, in its own process (an ALTER on
        # this connection would have psycopg forget its prepared statements).
        with psycopg.connect(**connection.get_connection_params(), autocommit=True) as other:
            other.execute(f"ALTER TABLE prepared_probe ALTER COLUMN v TYPE varchar({length})")

    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE prepared_probe (v varchar(10))")
        cursor.execute("INSERT INTO prepared_probe VALUES ('x')")
    try:
        for _ in range(6):  # prepared
            assert read() == [("x",)]
        migrate(20)
        # A worker's step is run again on a new connection, as after a lost one.
        assert retrying(read, within=10, what="reading the probe") == [("x",)]
        for _ in range(6):
            assert read() == [("x",)]
        migrate(30)
        with pytest.raises(OperationalError, match="cached plan must not change result type"):
            read()  # a request: 503 (DatabaseUnavailableMiddleware)
        close_old_connections()  # as after it, and between two tasks or passes
        assert read() == [("x",)]  # a new connection, which prepares it anew
    finally:
        with connection.cursor() as cursor:
            cursor.execute("DROP TABLE prepared_probe")


def test_the_web_process_compiles_the_url_pattern_before_its_first_request(tmp_path):
    code = (
        "import crontask.wsgi; from django.core.validators import URLValidator;"
        "from django.utils.functional import empty; from jobs.validators import _url_validator;"
        "print(URLValidator.regex._wrapped is not empty, _url_validator.regex._wrapped is not empty)"
    )
    env = {**os.environ, "CRONTASK_VAR_DIR": str(tmp_path), "SECRET_KEY": "x" * 50}
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, "-c", code], cwd=root, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", "True"]


@pytest.mark.django_db
@binds_on_the_server
def test_a_statement_with_more_values_than_can_be_bound_is_refused_not_taken_for_a_lost_connection():
    from django.db import OperationalError, ProgrammingError

    values = list(range(70_000))
    sql = f"SELECT 1 WHERE 0 IN ({', '.join(['%s'] * len(values))})"
    with (
        pytest.raises(ProgrammingError, match="70000 values in one statement") as refused,
        connection.cursor() as cursor,
    ):
        cursor.execute(sql, values)
    assert not isinstance(refused.value, OperationalError)
    with connection.cursor() as cursor:  # the connection is still good
        cursor.execute("SELECT %s", [1])
        assert cursor.fetchone() == (1,)
