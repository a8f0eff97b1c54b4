"""The egress policy where HTTP jobs connect: each request, each redirect hop, the address reached.

Local servers on two loopback addresses stand for an allowed and a denied target: 127.0.0.0/8
is all loopback on Linux, so a server bound on 127.0.0.2 answers there.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from urllib.parse import quote

import pytest

from jobs import services as job_services
from runs.executors.http import USER_AGENT, HttpCall
from runs.models import Run
from runs.tasks import execute_job
from tests.http_target import HttpTarget

pytestmark = pytest.mark.django_db

FIRE = "2026-03-02T10:01:00+00:00"
SECRET_HEADERS = {"X-Api-Key": "k-123456", "X-Custom": "custom-value", "Authorization": "Bearer t-123456"}


@pytest.fixture
def other_target() -> Iterator[HttpTarget]:
    """A second server, on another loopback address (another host to requests)."""
    with HttpTarget(host="127.0.0.2") as target:
        yield target


def redirect(source: HttpTarget, to: str, code: int = 302) -> str:
    return f"{source.url}/redirect/{code}?to={quote(to, safe='')}"


def run_job(url: str, **extra) -> Run:
    job_services.job_create(data={"id": "t", "interval_seconds": 60, "url": url, **extra})
    execute_job.apply(kwargs={"job_id": "t", "scheduled_for": FIRE}, throw=True)
    return Run.objects.get()


def call(url: str, **extra) -> HttpCall:
    return HttpCall(method="GET", url=url, headers={}, body="", timeout=5, max_bytes=1024, **extra)


def test_a_redirect_to_a_denied_address_is_refused_at_the_hop(http_target, other_target, settings):
    settings.CRONTASK_EGRESS_DENY = ["127.0.0.2/32"]
    run = run_job(redirect(http_target, f"{other_target.url}/inside"))
    assert (run.status, run.status_code) == ("failed", None)
    assert run.error == "Egress denied: 127.0.0.2 is in 127.0.0.2/32 (CRONTASK_EGRESS_DENY)."
    assert len(http_target.requests) == 1
    assert other_target.requests == []


def test_a_redirect_to_a_name_that_resolves_to_a_denied_address_is_refused_at_connect(
    http_target, other_target, settings
):
    settings.CRONTASK_EGRESS_DENY = ["127.0.0.1/32", "::1/128"]
    # localhost is 127.0.0.1 here, but no list names it: only the address reached tells.
    run = run_job(redirect(other_target, f"http://localhost:{http_target.server_address[1]}/inside"))
    assert (run.status, run.status_code) == ("failed", None)
    assert run.error == "Egress denied: localhost (127.0.0.1) is in 127.0.0.1/32 (CRONTASK_EGRESS_DENY)."
    assert len(other_target.requests) == 1
    assert http_target.requests == []


def test_a_redirect_to_a_metadata_address_is_refused_before_connecting(http_target, monkeypatch):
    connects = []
    real = socket.create_connection

    def create_connection(*a, **k) -> socket.socket:
        connects.append(a)
        return real(*a, **k)

    monkeypatch.setattr(socket, "create_connection", create_connection)
    run = run_job(redirect(http_target, "http://169.254.169.254/latest/meta-data/"))
    assert (run.status, run.error) == (
        "failed",
        "Egress denied: 169.254.169.254 is a cloud metadata address (CRONTASK_EGRESS_DENY, built in).",
    )
    assert connects == []


def test_a_name_that_resolves_to_a_denied_address_is_saved_and_refused_at_connect(http_target, settings):
    settings.CRONTASK_EGRESS_DENY = ["127.0.0.0/8", "::1/128"]
    port = http_target.server_address[1]
    run = run_job(f"http://localhost:{port}/inside")  # saved: the name is not resolved at save
    assert (run.status, run.status_code) == ("failed", None)
    assert run.error == "Egress denied: localhost (127.0.0.1) is in 127.0.0.0/8 (CRONTASK_EGRESS_DENY)."
    assert http_target.requests == []


def test_a_job_saved_before_its_target_was_denied_is_refused_when_it_runs(http_target, settings):
    job_services.job_create(data={"id": "t", "interval_seconds": 60, "url": f"{http_target.url}/x"})
    settings.CRONTASK_EGRESS_DENY = ["127.0.0.1"]
    execute_job.apply(kwargs={"job_id": "t", "scheduled_for": FIRE}, throw=True)
    run = Run.objects.get()
    assert (run.status, run.error) == ("failed", "Egress denied: 127.0.0.1 is in 127.0.0.1/32 (CRONTASK_EGRESS_DENY).")
    assert http_target.requests == []


@pytest.mark.parametrize("scheme", ["http", "https"])
@pytest.mark.parametrize("ahead", [0.0, 1.0])
def test_a_denied_peer_is_refused_before_a_byte_is_sent(settings, scheme, ahead):
    """Right after the TCP connect: not even a TLS ClientHello goes out. The same for a
    connection opened ahead of the fire (``_connect_ahead``), which is then dropped."""
    settings.CRONTASK_EGRESS_DENY = ["127.0.0.0/8", "::1/128"]
    received: list[bytes] = []
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(5)

        def serve() -> None:
            for _ in range(2 if ahead else 1):  # ahead: the one opened ahead, and send()'s own
                conn, _ = listener.accept()
                with conn:
                    conn.settimeout(5)
                    chunks = []
                    while chunk := conn.recv(4096):
                        chunks.append(chunk)
                    received.append(b"".join(chunks))

        server = threading.Thread(target=serve)
        server.start()
        made = call(f"{scheme}://localhost:{listener.getsockname()[1]}/", connect_within=ahead)
        assert made.ahead is None
        outcome = made.send()
        server.join(5)
    assert (outcome.status, outcome.status_code) == ("failed", None)
    assert outcome.error.startswith("Egress denied: localhost (127.0.0.1) is in 127.0.0.0/8")
    assert received == [b""] * (2 if ahead else 1)


def test_a_cross_host_redirect_drops_every_header_the_job_set(http_target, other_target):
    run = run_job(redirect(http_target, f"{other_target.url}/landing"), headers=SECRET_HEADERS)
    assert (run.status, run.status_code) == ("success", 200)
    [(_, _, first, _)] = http_target.requests
    assert {name: first[name] for name in SECRET_HEADERS} == SECRET_HEADERS
    [(_, path, sent, _)] = other_target.requests
    assert path == "/landing"
    assert not set(SECRET_HEADERS) & set(sent)
    assert not [name for name in sent if name.lower().startswith("x-crontask-")]
    assert sent["User-Agent"] == USER_AGENT


def test_headers_dropped_on_a_cross_host_hop_stay_dropped_on_the_way_back(http_target, other_target):
    back = redirect(other_target, f"{http_target.url}/back")
    run = run_job(redirect(http_target, back), headers=SECRET_HEADERS)
    assert run.status == "success"
    assert [path for _, path, _, _ in http_target.requests][1] == "/back"
    assert not set(SECRET_HEADERS) & set(http_target.requests[1][2])


def test_a_same_host_redirect_keeps_the_jobs_headers(http_target):
    run = run_job(redirect(http_target, f"{http_target.url}/landing", code=307), headers=SECRET_HEADERS)
    assert (run.status, run.status_code) == ("success", 200)
    _, (_, path, second, _) = http_target.requests
    assert path == "/landing"
    assert {name: second[name] for name in SECRET_HEADERS} == SECRET_HEADERS
    assert second["X-Crontask-Job-Id"] == "t"


def test_a_redirect_to_another_port_of_the_same_host_is_another_origin(http_target):
    with HttpTarget() as other_port:
        run = run_job(redirect(http_target, f"{other_port.url}/landing"), headers=SECRET_HEADERS)
        assert run.status == "success"
        assert not set(SECRET_HEADERS) & set(other_port.requests[0][2])


def test_with_follow_redirects_off_the_3xx_is_the_outcome(http_target):
    run = run_job(redirect(http_target, f"{http_target.url}/landing"), follow_redirects=False)
    assert (run.status, run.status_code, run.response_body, run.error) == ("success", 302, "moved", "")
    assert len(http_target.requests) == 1
    assert http_target.hits["/landing"] == 0


def test_an_allow_list_restricts_targets_to_it(http_target, other_target, settings):
    settings.CRONTASK_EGRESS_ALLOW = ["127.0.0.2/32"]
    run = run_job(f"{other_target.url}/in")
    assert run.status == "success"
    Run.objects.all().delete()
    # A name is saved (its address is unknown until a run connects), then refused by its address.
    job_services.job_update(job=run.job, data={"url": f"http://localhost:{http_target.server_address[1]}/out"})
    execute_job.apply(kwargs={"job_id": "t", "scheduled_for": FIRE}, throw=True)
    refused = Run.objects.get()
    assert refused.error == "Egress denied: localhost (127.0.0.1) is not in CRONTASK_EGRESS_ALLOW."
    assert http_target.requests == []


def test_an_allow_list_applies_to_each_redirect_hop(http_target, other_target, settings):
    settings.CRONTASK_EGRESS_ALLOW = ["127.0.0.2/32"]
    run = run_job(redirect(other_target, f"{http_target.url}/out"))
    assert (run.status, run.error) == ("failed", "Egress denied: 127.0.0.1 is not in CRONTASK_EGRESS_ALLOW.")
    assert http_target.requests == []


def test_an_allowed_name_is_reached_wherever_it_resolves(http_target, settings):
    settings.CRONTASK_EGRESS_ALLOW = ["localhost"]
    run = run_job(f"http://localhost:{http_target.server_address[1]}/in")
    assert (run.status, run.status_code) == ("success", 200)


def test_through_a_proxy_the_host_is_checked_and_the_proxy_connection_is_not(http_target, settings, monkeypatch):
    """The proxy (the operator's) resolves and connects: the policy sees the names as written."""
    for name in ("no_proxy", "NO_PROXY", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("http_proxy", http_target.url)
    settings.CRONTASK_EGRESS_DENY = ["127.0.0.0/8"]  # the proxy's own address
    outcome = call("http://target.example/x").send()
    assert (outcome.status, outcome.response_body) == ("success", "pong")
    assert [path for _, path, _, _ in http_target.requests] == ["http://target.example/x"]
    refused = call("http://169.254.169.254/latest/").send()
    assert refused.error.startswith("Egress denied: 169.254.169.254 is a cloud metadata address")
    assert len(http_target.requests) == 1


def test_a_call_checks_each_host_once_made_ready_and_again_at_each_hop(http_target, other_target, monkeypatch):
    """The pool (and the host's check) is looked up when the call is made ready; sending it asks
    again for the same request and is answered from that look (``_WatchedAdapter``). A redirect to
    another host is a new look, checked as ever."""
    from jobs import egress_http

    checked: list[str | None] = []
    original = egress_http.check_host

    def counted(host: str | None) -> None:
        checked.append(host)
        original(host)

    monkeypatch.setattr(egress_http, "check_host", counted)
    assert call(f"{http_target.url}/ok").send().status == "success"
    assert checked == ["127.0.0.1"]
    checked.clear()
    outcome = call(redirect(http_target, f"{other_target.url}/ok")).send()
    assert (outcome.status, outcome.status_code) == ("success", 200)
    assert checked == ["127.0.0.1", "127.0.0.2"]


def test_a_call_adapter_looks_a_pool_up_again_once_closed():
    import requests

    from runs.executors.http import _Watchdog, _WatchedAdapter

    adapter = _WatchedAdapter(_Watchdog(5))
    request = requests.Request("GET", "http://127.0.0.1:9/").prepare()
    first = adapter.get_connection_with_tls_context(request, True, {}, None)
    assert adapter.get_connection_with_tls_context(request, True, {}, None) is first
    adapter.close()  # the pools are closed: a new one is found
    second = adapter.get_connection_with_tls_context(request, True, {}, None)
    assert second is not first
    assert adapter.get_connection_with_tls_context(request, False, {}, None) is not second  # other settings


def test_every_call_shares_one_checked_connection_class_and_watches_its_own_sockets(http_target):
    """``jobs.egress_http._checked_connection`` makes a class once per urllib3 class and kind; each
    pool gives its connections its own adapter's watch, so each call's watchdog sees its own socket."""
    import requests

    from runs.executors.http import _Watchdog, _WatchedAdapter

    watchdogs = [_Watchdog(5), _Watchdog(5)]
    adapters = [_WatchedAdapter(watchdog) for watchdog in watchdogs]
    request = requests.Request("GET", f"{http_target.url}/ok").prepare()
    pools = [adapter.get_connection_with_tls_context(request, True, {}, None) for adapter in adapters]
    assert pools[0] is not pools[1]
    assert pools[0].ConnectionCls is pools[1].ConnectionCls
    assert getattr(pools[0].ConnectionCls, "crontask_checked", False)
    for pool in pools:
        pool.urlopen("GET", "/ok").release_conn()
    assert [len(watchdog._sockets) for watchdog in watchdogs] == [1, 1]
    for adapter in adapters:
        adapter.close()
    for watchdog in watchdogs:
        watchdog.__exit__()
