"""Fires that beat sends ahead of their time (CRONTASK_FIRE_LEAD_MS): claimed early, started on time."""

from __future__ import annotations

import socket
import threading
import time
from datetime import datetime, timedelta

import pytest
import requests
from django.utils import timezone

from jobs import services as job_services
from jobs.models import Job
from runs import claims, execution, reaper
from runs.claims import Claimant
from runs.executors import http as http_executor
from runs.models import Run
from runs.tasks import execute_fires, execute_job

pytestmark = pytest.mark.django_db


def make_job(job_id: str, url: str, **extra) -> Job:
    return job_services.job_create(data={"id": job_id, "interval_seconds": 60, "url": url, **extra})


def soon(seconds: float) -> datetime:
    return timezone.now() + timedelta(seconds=seconds)


def test_a_batch_sent_ahead_is_claimed_at_once_queued_and_called_at_its_time(http_target, settings, monkeypatch):
    settings.CRONTASK_FIRE_LEAD_MS = 1000
    for job_id in ("a", "b", "c"):
        make_job(job_id, f"{http_target.url}/{job_id}")
    fire = soon(1.5)
    seen = []
    start_queued = execution._start_queued

    def look_then_start(runs, **kwargs):  # what the runs were between the claim and the fire's time
        seen.append((timezone.now(), sorted(Run.objects.values_list("job_id", "status", "started_at"))))
        start_queued(runs, **kwargs)

    monkeypatch.setattr(execution, "_start_queued", look_then_start)
    execute_fires.apply(kwargs={"fires": [[job_id, fire.isoformat()] for job_id in ("a", "b", "c")]}, throw=True)

    [(looked_at, before)] = seen
    assert looked_at < fire
    assert before == [(job_id, "queued", None) for job_id in ("a", "b", "c")]
    runs = list(Run.objects.order_by("job_id"))
    assert [(r.job_id, r.scheduled_for, r.status) for r in runs] == [(j, fire, "success") for j in ("a", "b", "c")]
    assert all(r.started_at is not None and r.started_at >= fire for r in runs)
    # and the target saw no call before the fire's time
    assert sorted(path for _, path in http_target.arrivals) == ["/a", "/b", "/c"]
    assert min(at for at, _ in http_target.arrivals) >= fire.timestamp()
    for job in Job.objects.all():
        assert (job.run_count, job.success_count) == (1, 1)


def test_a_batch_sent_ahead_makes_its_calls_ready_before_the_fires_time(http_target, settings, monkeypatch):
    """The request is built and the environment read for proxies ahead; only the exchange is left."""
    settings.CRONTASK_FIRE_LEAD_MS = 1000
    for job_id in ("a", "b"):
        make_job(job_id, f"{http_target.url}/{job_id}")
    fire = soon(1.5)
    ready = []
    # What the environment says for each call (proxies, CA bundle): read per call, remembered
    # while the variables it reads do not change (runs.executors.http._environment_settings).
    read = http_executor._environment_settings

    def note_when(*args, **kwargs):
        ready.append(time.time())
        return read(*args, **kwargs)

    monkeypatch.setattr(http_executor, "_environment_settings", note_when)
    execute_fires.apply(kwargs={"fires": [[job_id, fire.isoformat()] for job_id in ("a", "b")]}, throw=True)
    assert len(ready) == 2
    assert max(ready) < fire.timestamp() <= min(at for at, _ in http_target.arrivals)
    assert sorted(Run.objects.values_list("status", flat=True)) == ["success", "success"]


def test_a_lone_fire_sent_ahead_is_claimed_at_once_queued_and_run_at_its_time(http_target, settings, monkeypatch):
    settings.CRONTASK_FIRE_LEAD_MS = 1000
    make_job("one", f"{http_target.url}/one")
    fire = soon(1.5)
    seen = []
    start_queued = execution._start_queued

    def look_then_start(runs):
        seen.append((timezone.now(), list(Run.objects.values_list("status", "started_at"))))
        start_queued(runs)

    monkeypatch.setattr(execution, "_start_queued", look_then_start)
    execute_job.apply(kwargs={"job_id": "one", "scheduled_for": fire.isoformat()}, throw=True)
    [(looked_at, before)] = seen
    assert looked_at < fire
    assert before == [("queued", None)]  # a worker dying now leaves a run for the reaper
    run = Run.objects.get()
    assert (run.status, run.scheduled_for) == ("success", fire)
    assert run.started_at is not None
    assert run.started_at >= fire
    [(arrived, _path)] = http_target.arrivals
    assert arrived >= fire.timestamp()


def test_a_worker_holds_an_early_fire_no_longer_than_the_lead_and_a_second(settings, monkeypatch):
    """A worker whose clock is behind beat's (or a forged message) cannot be held for long."""
    settings.CRONTASK_FIRE_LEAD_MS = 250
    slept: list[float] = []
    monkeypatch.setattr(execution.time, "sleep", slept.append)
    execution._hold_until(soon(3600))
    execution._hold_until(soon(-1))
    execution._hold_until(None)
    assert slept == [1.25]


def test_a_fire_claimed_ahead_whose_worker_died_is_reaped_lost_and_retried(http_target, settings):
    job = make_job("held", f"{http_target.url}/held", max_retries=1, retry_backoff_seconds=5)
    fire = soon(0.5).replace(microsecond=0) + timedelta(seconds=1)
    [run] = claims.claim_fires([(job, fire)], by=Claimant("w", "t", now=fire - timedelta(milliseconds=200)))
    assert (run.status, run.started_at) == ("queued", None)
    # the message comes again (the worker died holding it): the fire is claimed, nothing runs twice
    execute_fires.apply(kwargs={"fires": [["held", fire.isoformat()]]}, throw=True)
    assert Run.objects.get().status == "queued"

    # Reaped at its fire's time plus its timeout and the grace, as a running run is (it may be
    # running while still queued, if the database refused to mark it running).
    grace = timedelta(seconds=settings.CRONTASK_LOST_GRACE_SECONDS + job.timeout_seconds)
    assert reaper.reap_lost_runs(now=fire + grace - timedelta(seconds=1)) == 0
    assert reaper.reap_lost_runs(now=fire + grace + timedelta(seconds=1)) == 1
    run.refresh_from_db()
    assert (run.status, run.error) == ("lost", reaper._LOST_HELD)
    assert list(Run.objects.filter(attempt=2).values_list("status", "trigger")) == [("queued", "retry")]
    assert http_target.hits == {}


def test_a_forbid_job_claimed_ahead_counts_as_going(http_target, settings):
    settings.CRONTASK_FIRE_LEAD_MS = 1000
    job = make_job("solo", f"{http_target.url}/solo", concurrency_policy="forbid")
    fire = soon(0.5)
    [held] = claims.claim_fires([(job, fire)], by=Claimant("w", "t", now=timezone.now()))
    assert held.status == "queued"
    later = fire + timedelta(seconds=1)
    [run] = claims.claim_fires([(job, later)], by=Claimant("w", "t", now=timezone.now()))
    assert (run.status, run.error) == (
        "skipped",
        f"Concurrency policy 'forbid': run {held.pk} of this job was still running.",
    )


def test_a_request_that_cannot_be_built_fails_when_sent_with_requests_own_reason():
    from runs.executors.http import HttpCall

    call = HttpCall(method="GET", url="http://", headers={}, body="", timeout=5, max_bytes=1024)  # made ready: no error
    with pytest.raises(requests.RequestException) as raised:
        requests.get("http://", timeout=5)
    outcome = call.send()
    assert (outcome.status, outcome.error) == ("failed", f"{type(raised.value).__name__}: {raised.value}")


def test_a_crash_while_a_call_is_made_ready_fails_its_run_with_secrets_masked(http_target, monkeypatch):
    secret = "Bearer s3cr3t-t0ken-never-shown"

    def crash(job, **kwargs):
        raise ValueError(f"cannot build {job.headers['Authorization']!r}")

    monkeypatch.setattr(execution.executors, "prepare", crash)
    make_job("a", f"{http_target.url}/a", headers={"Authorization": secret})
    make_job("b", f"{http_target.url}/b", headers={"Authorization": secret})
    fire = timezone.now()
    execute_fires.apply(kwargs={"fires": [["a", fire.isoformat()], ["b", fire.isoformat()]]}, throw=True)
    assert sorted(Run.objects.values_list("job_id", "status", "error")) == [
        (job_id, "failed", "ValueError: cannot build '********'") for job_id in ("a", "b")
    ]
    assert http_target.hits == {}


def test_a_call_made_ready_ahead_opens_its_connection_then_sends_on_it_at_its_time():
    from runs.executors.http import HttpCall

    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(2)
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/x"
        call = HttpCall(method="GET", url=url, headers={}, body="", timeout=5, max_bytes=1024, connect_within=1.0)
        conn, _ = listener.accept()  # connected while being made ready
        with conn:
            conn.settimeout(0.2)
            with pytest.raises(TimeoutError):
                conn.recv(1)  # and nothing sent yet
            conn.settimeout(5)

            def answer() -> None:
                request = b""
                while b"\r\n\r\n" not in request:
                    request += conn.recv(4096)
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")

            server = threading.Thread(target=answer)
            server.start()
            outcome = call.send()
            server.join()
        assert (outcome.status, outcome.status_code, outcome.response_body) == ("success", 200, "ok")
        listener.settimeout(0.2)
        with pytest.raises(TimeoutError):
            listener.accept()  # the call went out on the connection opened ahead: no second one


def test_a_connection_that_cannot_be_opened_ahead_is_reported_when_the_call_is_sent():
    from runs.executors.http import HttpCall

    call = HttpCall(
        method="GET", url="http://127.0.0.1:9/", headers={}, body="", timeout=5, max_bytes=1024, connect_within=0.5
    )
    outcome = call.send()
    assert outcome.status == "failed"
    assert outcome.error.startswith("ConnectionError: ")
    assert "Connection refused" in outcome.error


def test_runs_claimed_ahead_whose_start_cannot_be_stored_still_end_once_with_their_outcome(
    http_target, settings, monkeypatch
):
    from django.db import DatabaseError

    settings.CRONTASK_FIRE_LEAD_MS = 1000

    def down(pks, now):
        raise DatabaseError("the connection went away")

    monkeypatch.setattr(execution, "_mark_running", down)
    for job_id in ("a", "b"):
        make_job(job_id, f"{http_target.url}/{job_id}")
    fire = soon(1.0)
    execute_fires.apply(kwargs={"fires": [["a", fire.isoformat()], ["b", fire.isoformat()]]}, throw=True)
    assert sorted(Run.objects.values_list("job_id", "status")) == [("a", "success"), ("b", "success")]
    assert all(run.started_at is not None and run.started_at >= fire for run in Run.objects.all())
    assert http_target.hits == {"/a": 1, "/b": 1}
    assert reaper.reap_lost_runs(now=fire + timedelta(days=2)) == 0  # nothing left to reap, nor to retry


def test_a_tls_connection_opened_ahead_is_the_one_the_call_uses(tmp_path, monkeypatch):
    """A TLS 1.3 server sends session tickets after the handshake; the call must not take them
    for a closed connection and open a second one."""
    import ssl
    import subprocess

    from runs.executors.http import HttpCall

    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert))  # requests' own way to trust it
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.load_cert_chain(cert, key)
    accepted = []

    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(5)

        def serve() -> None:
            for _ in range(2):  # the one expected, and a second one if the call opened another
                try:
                    raw, _ = listener.accept()
                except TimeoutError:
                    return
                accepted.append(raw)
                conn = context.wrap_socket(raw, server_side=True)
                conn.settimeout(5)
                try:
                    request = b""
                    while b"\r\n\r\n" not in request:
                        chunk = conn.recv(4096)
                        if not chunk:
                            break
                        request += chunk
                    if request:
                        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
                        listener.settimeout(0.5)
                except (OSError, ssl.SSLError):
                    continue

        server = threading.Thread(target=serve)
        server.start()
        url = f"https://127.0.0.1:{listener.getsockname()[1]}/x"
        call = HttpCall(method="GET", url=url, headers={}, body="", timeout=5, max_bytes=1024, connect_within=1.0)
        time.sleep(0.2)  # the tickets have arrived
        outcome = call.send()
        server.join()
    assert (outcome.status, outcome.response_body) == ("success", "ok"), outcome.error
    assert len(accepted) == 1
