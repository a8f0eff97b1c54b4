"""An HTTP call's request, made ready by ``_CallSession.prepare_request``: the same request
requests' own ``Session.prepare_request`` makes, without its merges of what a call has none of."""

from __future__ import annotations

import pytest
import requests

from runs.executors.http import USER_AGENT, HttpCall, _CallSession

IDENTITY = {"X-Crontask-Run-Id": "7", "X-Crontask-Attempt": "1"}


def _both(method: str, url: str, headers: dict[str, str], data: object) -> tuple[object, object]:
    def made(session: requests.Session) -> requests.PreparedRequest:
        return session.prepare_request(requests.Request(method.upper(), url, headers=headers, data=data))

    return made(_CallSession(dropped_on_redirect=headers)), made(requests.Session())


def _shape(prepared: requests.PreparedRequest) -> tuple[object, ...]:
    cookies = prepared._cookies  # type: ignore[attr-defined]  # requests' own attribute
    return (
        prepared.method,
        prepared.url,
        list(prepared.headers.items()),
        prepared.body,
        prepared.hooks,
        type(cookies),
        len(cookies),
    )


@pytest.mark.parametrize(
    ("method", "url", "headers", "data"),
    [
        ("POST", "http://127.0.0.1:8080/hook", {"User-Agent": USER_AGENT, **IDENTITY}, b'{"a": 1}'),
        ("get", "https://api.example.com", {"User-Agent": USER_AGENT}, {}),
        ("DELETE", "http://api.example.com/items/3?force=1&x=%20y", {}, {}),
        ("PUT", "http://api.example.com/ä b/ü?q=é#frag", {"Accept": "text/plain", "accept-encoding": "identity"}, b"x"),
        ("POST", "http://bücher.example/", {"Cookie": "session=abc", "Authorization": "Bearer t"}, b"body"),
        ("PATCH", "http://user:p%40ss@127.0.0.1:9/x", {"user-agent": "mine/2"}, b""),
        ("HEAD", "http://[::1]:8080/path", {"Content-Type": "application/json"}, {}),
    ],
)
def test_a_calls_request_is_the_one_requests_makes(method, url, headers, data):
    ours, theirs = _both(method, url, headers, data)
    assert _shape(ours) == _shape(theirs)  # type: ignore[arg-type]


def test_credentials_from_netrc_are_sent_as_requests_sends_them(tmp_path, monkeypatch):
    netrc = tmp_path / "netrc"
    netrc.write_text("machine api.example.com login robot password s3cret\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    ours, theirs = _both("POST", "https://api.example.com/hook", {"User-Agent": USER_AGENT}, b"{}")
    assert ours.headers["Authorization"] == "Basic cm9ib3Q6czNjcmV0"  # type: ignore[attr-defined]
    assert _shape(ours) == _shape(theirs)  # type: ignore[arg-type]
    other, _ = _both("POST", "https://other.example.com/hook", {}, b"{}")
    assert "Authorization" not in other.headers  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("url", "error"),
    [
        ("api.example.com/hook", requests.exceptions.MissingSchema),
        ("http://", requests.exceptions.InvalidURL),
        ("http://*.example.com/", requests.exceptions.InvalidURL),
    ],
)
def test_a_url_requests_refuses_is_refused_the_same_way_each_time(url, error):
    with pytest.raises(error) as theirs:
        requests.Session().prepare_request(requests.Request("GET", url))
    for _ in range(2):  # a refused URL is not remembered as anything
        with pytest.raises(error) as ours:
            _CallSession(dropped_on_redirect={}).prepare_request(requests.Request("GET", url))
        assert str(ours.value) == str(theirs.value)
    call = HttpCall(method="GET", url=url, headers={}, body="", timeout=5, max_bytes=100)
    assert isinstance(call.problem, error)  # raised by send(), as before


def test_a_session_with_cookies_of_its_own_is_prepared_by_requests():
    session = _CallSession(dropped_on_redirect={})
    session.cookies.set("seen", "yes")
    prepared = session.prepare_request(requests.Request("GET", "http://api.example.com/"))
    assert prepared.headers["Cookie"] == "seen=yes"


def test_a_plain_calls_request_is_made_without_requests_merges(monkeypatch):
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("merged")

    monkeypatch.setattr(requests.sessions, "merge_setting", refuse)
    monkeypatch.setattr(requests.sessions, "merge_cookies", refuse)
    prepared = _CallSession(dropped_on_redirect={}).prepare_request(
        requests.Request("POST", "http://api.example.com/hook", headers=IDENTITY, data=b"{}")
    )
    assert prepared.headers["X-Crontask-Run-Id"] == "7"
    assert prepared.headers["Content-Length"] == "2"
