"""Production settings and the compose file."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
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
    assert "gunicorn crontask.wsgi" in " ".join(services["web"]["command"])
    assert "migrate" in " ".join(services["web"]["command"])
    assert services["worker"]["command"] == ["celery", "-A", "crontask", "worker", "-l", "INFO"]
    assert services["beat"]["command"] == ["celery", "-A", "crontask", "beat", "-l", "INFO"]
    assert services["beat"]["deploy"]["replicas"] == 1
    for name in ("worker", "beat"):  # web migrates first
        assert services[name]["depends_on"]["web"]["condition"] == "service_healthy"


def test_json_logs_are_one_object_per_line_with_the_events_fields():
    import json
    import logging

    from crontask.logs import JsonFormatter

    record = logging.LogRecord("runs.services", logging.INFO, __file__, 1, "run finished", None, None)
    record.run_id, record.job_id, record.status, record.duration_ms = 7, "ping", "success", 12
    line = JsonFormatter().format(record)
    assert "\n" not in line
    event = json.loads(line)
    assert (event["run_id"], event["job_id"], event["status"], event["duration_ms"]) == (7, "ping", "success", 12)
