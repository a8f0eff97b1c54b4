"""Production settings, the compose file, the image's build context, static files and logs."""

from __future__ import annotations

import gzip
import json
import logging
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
import yaml
from django.core.management import call_command
from django.http import StreamingHttpResponse
from django.test import Client

from core.logs import JsonFormatter
from jobs import services
from runs.execution import run_in_foreground
from tests.e2e.conftest import _free_port

ROOT = Path(__file__).resolve().parents[1]
GUNICORN = "gunicorn -c gunicorn.conf.py crontask.wsgi"
DESIGN_ENV = [
    "DATABASE_URL", "CELERY_BROKER_URL", "SECRET_KEY", "DEBUG", "ALLOWED_HOSTS", "TIME_ZONE",
    "CRONTASK_DEFAULT_TIMEOUT", "CRONTASK_ALLOW_SHELL", "CRONTASK_SCRIPTS_DIR", "CRONTASK_RUN_RETENTION_DAYS",
    "CRONTASK_MAX_OUTPUT_BYTES", "CRONTASK_ALLOW_ANONYMOUS_API", "CRONTASK_HANDLER_PACKAGES",
]  # fmt: skip


def env_example() -> dict[str, str]:
    values = {}
    for line in (ROOT / ".env.example").read_text().splitlines():
        line = line.strip().lstrip("# ")
        if "=" in line and line.split("=", 1)[0].isupper():
            name, value = line.split("=", 1)
            values[name] = value
    return values


def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def production_env(tmp_path: Path) -> dict[str, str]:
    """What a container of the compose file sees: .env.example's values (a new SECRET_KEY), and
    the paths the image sets (Dockerfile ENV, /app/...) mapped to this checkout and tmp_path.
    DATABASE_URL and CELERY_BROKER_URL are left out (SQLite and the filesystem broker): callers
    with services set them."""
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    env.update(env_example())
    for name in ("DATABASE_URL", "CELERY_BROKER_URL"):  # both commented out in .env.example
        env.pop(name, None)
    env.update({
        "SECRET_KEY": "deploy-test-" + secrets.token_urlsafe(40),
        "CRONTASK_VAR_DIR": str(tmp_path / "var"),
        "STATIC_ROOT": str(tmp_path / "static"),
        "CRONTASK_SCRIPTS_DIR": str(ROOT / "scripts"),
        "PYTHONUNBUFFERED": "1",
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
    })  # fmt: skip
    (tmp_path / "var").mkdir(exist_ok=True)  # the image makes /app/var (Dockerfile)
    return env


def compose_command(service: str, port: int) -> list[str]:
    """The service's compose command; web's gunicorn listens on 127.0.0.1:port instead of 0.0.0.0:8000
    (an option on the command line overrides gunicorn.conf.py's bind)."""
    command = compose()["services"][service]["command"]
    config = "gunicorn -c gunicorn.conf.py"
    return [part.replace(config, f"{config} --bind 127.0.0.1:{port}") for part in command]


def healthcheck_argv(service: str, port: int) -> list[str]:
    """The service's compose health check as docker runs it inside the container, aimed at the
    port the test's web process listens on instead of 8000."""
    kind, *args = compose()["services"][service]["healthcheck"]["test"]
    # Compose turns $$ into $ (left for the container's shell to expand).
    args = [arg.replace("$$", "$").replace("127.0.0.1:8000", f"127.0.0.1:{port}") for arg in args]
    if kind == "CMD-SHELL":
        return ["/bin/sh", "-c", *args]
    assert kind == "CMD", kind
    return args


def wait_healthy(service: str, port: int, env: dict[str, str], timeout: float) -> subprocess.CompletedProcess:
    """Run the health check until it passes, as docker retries it; the last attempt is returned."""
    deadline = time.monotonic() + timeout
    while True:
        done = subprocess.run(
            healthcheck_argv(service, port), cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
        )
        if done.returncode == 0 or time.monotonic() > deadline:
            return done
        time.sleep(1)


def test_the_documented_production_environment_passes_the_deploy_check(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "CELERY_BROKER_URL")}
    env.update({k: v for k, v in env_example().items() if k not in ("DATABASE_URL", "CELERY_BROKER_URL")})
    env["CRONTASK_VAR_DIR"] = str(tmp_path)
    env["STATIC_ROOT"] = str(tmp_path / "static")
    done = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr


def test_env_example_documents_every_setting_of_the_design():
    documented = env_example()
    assert [name for name in DESIGN_ENV if name not in documented] == []


def test_the_compose_file_has_the_services_with_health_checks_and_restart_policies():
    services = compose()["services"]
    assert set(services) == {"postgres", "redis", "web", "worker", "beat"}
    for name, service in services.items():
        assert service.get("healthcheck", {}).get("test"), name
        assert service.get("restart") == "unless-stopped", name
    assert "pgdata:/var/lib/postgresql/data" in services["postgres"]["volumes"]
    for name in ("web", "worker", "beat"):
        environment = services[name]["environment"]
        assert environment["DATABASE_URL"].startswith("postgres://")
        assert environment["CELERY_BROKER_URL"].startswith("redis://")
        assert services[name]["env_file"] == ".env"
    assert GUNICORN in " ".join(services["web"]["command"])
    assert "migrate" in " ".join(services["web"]["command"])
    assert services["worker"]["command"] == ["celery", "-A", "crontask", "worker", "-l", "INFO"]
    assert services["beat"]["command"] == ["celery", "-A", "crontask", "beat", "-l", "INFO"]
    assert services["beat"]["deploy"]["replicas"] == 1
    for name in ("worker", "beat"):  # web migrates first
        assert services[name]["depends_on"]["web"]["condition"] == "service_healthy"


def test_the_image_and_compose_serve_with_the_gunicorn_configuration():
    image = json.loads((ROOT / "Dockerfile").read_text().split("\nCMD ", 1)[1].splitlines()[0])
    for command in (" ".join(image), " ".join(compose()["services"]["web"]["command"])):
        assert f"exec {GUNICORN}" in command
        # Nothing on the command line overrides the configuration's sizing.
        assert not any(option in command for option in ("--workers", "-w ", "--threads", "--worker-class", "-k "))
    # The tests that run the compose command make it listen where they look.
    assert "exec gunicorn -c gunicorn.conf.py --bind 127.0.0.1:5555 crontask.wsgi" in compose_command("web", 5555)[2]


def gunicorn_settings(monkeypatch, *, cpus: int, **env: str) -> dict:
    """gunicorn.conf.py's values on a machine with this many CPUs."""
    import runpy

    for name in ("WEB_CONCURRENCY", "WEB_THREADS", "PORT"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(cpus)))
    return runpy.run_path(str(ROOT / "gunicorn.conf.py"))


@pytest.mark.parametrize(("cpus", "workers"), [(1, 3), (2, 5), (3, 7), (64, 8)])
def test_gunicorn_runs_threaded_workers_sized_from_the_cpus(monkeypatch, cpus, workers):
    conf = gunicorn_settings(monkeypatch, cpus=cpus)
    assert (conf["workers"], conf["threads"], conf["worker_class"]) == (workers, 4, "gthread")
    assert conf["bind"] == ["0.0.0.0:8000"]
    assert conf["accesslog"] == "-"


def test_gunicorn_sizes_can_be_set_and_bad_ones_stop_the_start(monkeypatch):
    conf = gunicorn_settings(monkeypatch, cpus=2, WEB_CONCURRENCY="3", WEB_THREADS="8", PORT="9000")
    assert (conf["workers"], conf["threads"], conf["bind"]) == (3, 8, ["0.0.0.0:9000"])
    with pytest.raises(SystemExit, match="WEB_THREADS"):
        gunicorn_settings(monkeypatch, cpus=2, WEB_THREADS="many")


def test_gunicorn_itself_reads_the_configuration():
    env = {**os.environ, "WEB_CONCURRENCY": "3", "WEB_THREADS": "6"}
    done = subprocess.run(
        [str(Path(sys.executable).parent / "gunicorn"), "--print-config", "-c", "gunicorn.conf.py", "crontask.wsgi"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    printed = {
        key.strip(): value.strip()
        for key, value in (line.split(" = ", 1) for line in done.stdout.splitlines() if " = " in line)
    }
    assert {name: printed[name] for name in ("workers", "threads", "worker_class")} == {
        "workers": "3", "threads": "6", "worker_class": "gthread",
    }  # fmt: skip


def test_json_logs_are_one_object_per_line_with_the_events_fields():
    import json
    import logging

    from core.logs import JsonFormatter

    record = logging.LogRecord("runs.outcomes", logging.INFO, __file__, 1, "run finished", None, None)
    record.run_id, record.job_id, record.status, record.duration_ms = 7, "ping", "success", 12
    line = JsonFormatter().format(record)
    assert "\n" not in line
    event = json.loads(line)
    assert (event["run_id"], event["job_id"], event["status"], event["duration_ms"]) == (7, "ping", "success", 12)


@pytest.mark.e2e
def test_the_web_health_check_passes_with_the_documented_environment(tmp_path):
    """ALLOWED_HOSTS=crontask.example.com as documented: the check must still get its 200, or
    web never turns healthy and compose never starts worker and beat."""
    env = production_env(tmp_path)
    assert env["ALLOWED_HOSTS"] == "crontask.example.com"
    assert "127.0.0.1:8000" in " ".join(compose()["services"]["web"]["healthcheck"]["test"])
    port = _free_port()
    with (tmp_path / "web.log").open("wb") as log:
        web = subprocess.Popen(
            compose_command("web", port), cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    try:
        done = wait_healthy("web", port, env, timeout=90)
        assert done.returncode == 0, done.stderr[-2000:] + (tmp_path / "web.log").read_text()[-3000:]
        # ALLOWED_HOSTS still holds for everyone else.
        assert requests.get(f"http://127.0.0.1:{port}/health", timeout=5).status_code == 400
    finally:
        os.killpg(web.pid, signal.SIGTERM)
        web.wait(timeout=30)


def test_the_image_build_context_leaves_out_local_state_and_secrets():
    entries = {
        line.strip().removeprefix("**/")
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    wanted = {
        ".venv",
        "var",
        ".git",
        ".env",
        "test-output",
        "__pycache__",
        ".pytest_cache",
        ".ruff_cache",
        ".hypothesis",
    }
    assert wanted - entries == set()
    assert ".env.example" not in entries


def test_whitenoise_serves_the_collected_static_files_with_debug_off(settings, tmp_path):
    settings.DEBUG = False
    settings.STATIC_ROOT = str(tmp_path / "static")
    call_command("collectstatic", interactive=False, verbosity=0)
    client = Client()  # a new handler: its whitenoise reads the STATIC_ROOT just filled
    response = client.get("/static/jobs/cron_preview.js")
    assert response.status_code == 200
    assert response["Content-Type"].split(";")[0] in ("text/javascript", "application/javascript")
    assert isinstance(response, StreamingHttpResponse)  # whitenoise's FileResponse
    source = (ROOT / "jobs" / "static" / "jobs" / "cron_preview.js").read_bytes()
    assert b"".join(response.streaming_content) == source
    compressed = client.get("/static/jobs/cron_preview.js", HTTP_ACCEPT_ENCODING="gzip")
    assert compressed["Content-Encoding"] == "gzip"
    assert isinstance(compressed, StreamingHttpResponse)
    assert gzip.decompress(b"".join(compressed.streaming_content)) == source
    assert client.get("/static/jobs/no-such-file.js").status_code == 404


@pytest.mark.django_db
def test_a_finished_run_is_logged_with_its_fields(caplog, http_target):
    job = services.job_create(data={"id": "logged", "url": f"{http_target.url}/hello"})
    with caplog.at_level(logging.INFO, logger="runs.outcomes"):
        run = run_in_foreground(job=job)
    (record,) = [r for r in caplog.records if r.name == "runs.outcomes" and r.getMessage().startswith("run finished")]
    event = json.loads(JsonFormatter().format(record))
    assert event["level"] == "INFO"
    assert event["logger"] == "runs.outcomes"
    assert (event["run_id"], event["job_id"], event["status"]) == (run.pk, "logged", "success")
    assert event["duration_ms"] == run.duration_ms
    assert isinstance(event["duration_ms"], int)
