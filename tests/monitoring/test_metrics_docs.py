"""The Grafana dashboard and the scrape example shipped in docs/ name only metrics that exist,
and the metrics directory is shared as documented."""

from __future__ import annotations

import json
import re
import runpy
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from core import multiprocess

ROOT = Path(__file__).resolve().parents[2]
# PromQL's own words, and Grafana's variables: not metric names.
PROMQL = {"sum", "by", "rate", "histogram_quantile", "le", "status", "kind", "reason", "queue", "worker"}
# Counted only once something happens: a fresh scrape may not show them yet.
COUNTED = {
    "crontask_runs_total", "crontask_run_duration_seconds", "crontask_run_start_lateness_seconds",
    "crontask_fires_published_total", "crontask_fires_skipped_by_beat_total", "crontask_beat_claim_lag_seconds",
    "crontask_notifications_total",
}  # fmt: skip


def exprs() -> list[str]:
    dashboard = json.loads((ROOT / "docs" / "grafana-dashboard.json").read_text())
    return [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]


def named(expr: str) -> set[str]:
    words = set(re.findall(r"\b[a-z_][a-z0-9_]*\b", re.sub(r'"[^"]*"|\[[^\]]*\]', "", expr)))
    return {word for word in words - PROMQL if word.startswith("crontask_")}


@pytest.mark.django_db
def test_every_metric_the_dashboard_names_is_one_metrics_exports():
    from django.test import Client

    from core import metrics
    from heartbeats.services import BEAT, record_heartbeat, worker_heartbeat_name

    record_heartbeat(BEAT)
    record_heartbeat(worker_heartbeat_name("w@host"), hostname="w@host")
    # Something counted once in each counted family, so that the scrape shows them all.
    metrics.count_run(kind="http", trigger="manual", status="success", job_id="x", duration=0.1, lateness=0.0)
    metrics.count_fires_published(0)
    metrics.count_fires_superseded(1)
    metrics.observe_claims([], now=None)  # type: ignore[arg-type]  # nothing claimed: now is not read
    metrics.count_notification(sent=True, retrying=False)
    text = Client().get("/metrics", HTTP_HOST="localhost").content.decode()
    families = {family.name for family in text_string_to_metric_families(text)}
    samples = {sample.name for family in text_string_to_metric_families(text) for sample in family.samples}
    exported = families | samples
    assert {name.removesuffix("_total") for name in COUNTED} <= families
    wanted = set().union(*(named(expr) for expr in exprs()))
    assert wanted, "the dashboard has no query"
    assert sorted(wanted - exported) == []
    # And the dashboard shows every metric there is.
    assert sorted(name for name in families if not any(name in w for w in wanted)) == []


def test_the_scrape_example_reads_metrics_with_a_bearer_token():
    config = yaml.safe_load((ROOT / "docs" / "prometheus.yml").read_text())
    [job] = config["scrape_configs"]
    assert job["metrics_path"] == "/metrics"
    assert job["authorization"]["type"] == "Bearer"


def test_the_metrics_directory_is_the_setting_else_in_the_var_dir(monkeypatch, tmp_path):
    monkeypatch.delenv(multiprocess.ENV, raising=False)
    assert multiprocess.metrics_dir(tmp_path) == tmp_path / "metrics"
    monkeypatch.setenv("CRONTASK_VAR_DIR", str(tmp_path / "v"))
    assert multiprocess.metrics_dir() == tmp_path / "v" / "metrics"
    monkeypatch.setenv(multiprocess.ENV, str(tmp_path / "elsewhere"))
    assert multiprocess.metrics_dir(tmp_path) == tmp_path / "elsewhere"


def test_processes_are_named_by_host_and_pid_and_their_live_gauges_go_when_they_end(tmp_path):
    name = multiprocess.process_identifier(1234)
    assert name.endswith("-1234")
    assert "_" not in name  # prometheus_client splits the file names on it
    for kind in ("gauge_livesum", "gauge_liveall", "counter"):
        (tmp_path / f"{kind}_{name}.db").write_bytes(b"")
    multiprocess.mark_process_dead(1234, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"counter_{name}.db"]  # its counts stay
    assert multiprocess.clear(tmp_path) == 1
    assert list(tmp_path.iterdir()) == []


def test_compose_shares_one_metrics_volume_between_web_workers_and_beat():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    for name in ("web", "worker", "beat"):
        assert "metrics:/app/var/metrics" in compose["services"][name]["volumes"], name
    assert "metrics" in compose["volumes"]


def test_gunicorn_forgets_the_live_gauges_of_a_worker_that_exits(monkeypatch):
    conf = runpy.run_path(str(ROOT / "gunicorn.conf.py"))
    ended: list[int] = []
    monkeypatch.setattr(multiprocess, "mark_process_dead", ended.append)

    class Worker:
        pid = 4321

    conf["child_exit"](None, Worker())
    assert ended == [4321]
