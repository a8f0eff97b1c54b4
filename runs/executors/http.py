"""Run an http job: one request with requests, the body read up to the output limit.

``timeout`` is a hard bound on the whole exchange. requests' own timeout is per socket read,
so a server that trickles a byte every half second (headers or body) would never hit it.
Here a watchdog timer shuts the request's sockets down at the deadline, which makes whatever
read is blocked return at once, and the body is read in small pieces with the deadline
checked between them.

The egress policy (``jobs.egress``) is applied where connections are made, so it holds for
every request of a call, redirects included: each request's host before its connection is
found, and each new connection's peer address right after the connect, before a byte is sent
(``jobs.egress_http.EgressAdapter``, which ``_WatchedAdapter`` extends with the watchdog). A
redirect to another origin drops every header the call was given (``_CallSession``).
"""

from __future__ import annotations

import contextlib
import functools
import heapq
import logging
import os
import re
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import requests
import urllib3
from django.utils.translation import gettext as _
from requests.cookies import RequestsCookieJar
from requests.structures import CaseInsensitiveDict
from requests.utils import check_header_validity, get_netrc_auth
from urllib3.connection import HTTPConnection
from urllib3.connectionpool import HTTPConnectionPool

from core.per_process import PerProcess
from jobs import egress
from jobs.egress_http import EgressAdapter
from jobs.secrets import mask_values, value_forms
from runs.executors.base import Outcome, OutputBuffer, Progress, cancelled_error

if TYPE_CHECKING:
    from urllib3._base_connection import BaseHTTPConnection  # a Protocol urllib3 defines for type checkers only

USER_AGENT = "crontask/1.0"
READ_SIZE = 8192


class HttpCall:
    """One call, made ready ahead of its time, then sent by ``send``.

    ``requests.Session.request`` builds the request, reads the proxy settings from the
    environment (a walk over every variable, a millisecond of CPU in a worker's environment)
    and finds the connection pool before it sends anything. Here that is done when the call
    is made ready, so that a call whose fire was sent ahead (CRONTASK_FIRE_LEAD_MS) has only
    the exchange itself left at the fire's time. What the call does is the same: the same
    steps, in the same order, on the same session. An error found while making it ready is
    raised at ``send``, where it is handled as it always was.

    With ``connect_within`` (the seconds left before the fire), the connection is opened ahead
    too, TLS handshake included, if that takes no longer: the request then leaves at the fire's
    time instead of one to three round trips later. A connection that could not be opened in
    time is dropped, and ``send`` opens one as usual (and meets the error, if there is one).
    """

    def __init__(
        self,
        *,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: str,
        timeout: float,
        max_bytes: int,
        connect_within: float = 0.0,
        follow_redirects: bool = True,
        progress: Progress | None = None,
    ) -> None:
        self.timeout = timeout
        self.progress = progress
        self.max_bytes = max_bytes
        self.headers = {"User-Agent": USER_AGENT, **headers}
        self.job_headers = headers  # the values an error message must not show
        self.refused = _refused_header(self.headers)
        self.watchdog = _Watchdog(timeout)
        self.session = _CallSession(dropped_on_redirect=self.headers)
        adapter = _WatchedAdapter(self.watchdog)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.problem: Exception | None = None
        self.ahead: BaseHTTPConnection | None = None  # the connection opened ahead, if any
        if self.refused:
            return
        try:
            self.request = self.session.prepare_request(
                requests.Request(method.upper(), url, headers=self.headers, data=body.encode() if body else {})
            )
            prepared_url = self.request.url or ""  # set once prepared; requests' types allow None
            self.send_kwargs: dict[str, Any] = {  # Session.send's options, as Session.request gives them
                "timeout": timeout,
                "allow_redirects": follow_redirects,
                **_environment_settings(self.session, prepared_url),
            }
        except Exception as exc:  # noqa: BLE001 - raised again by send(), as session.request would
            self.problem = exc
            return
        with contextlib.suppress(Exception):  # only a head start: send() meets any error itself
            found = self.session.get_adapter(prepared_url)  # ``adapter`` for http and https; InvalidSchema otherwise
            if isinstance(found, _WatchedAdapter):
                pool = found.get_connection_with_tls_context(
                    self.request, self.send_kwargs["verify"], self.send_kwargs["proxies"], self.send_kwargs["cert"]
                )
                if connect_within > 0:
                    self.ahead = _connect_ahead(pool, min(connect_within, timeout))

    def send(self) -> Outcome:
        """Make the call: a 2xx or 3xx answer is a success; anything else, or no answer, a failure."""
        if self.refused:
            self.session.close()
            return Outcome(status="failed", error=self.refused)
        deadline = time.monotonic() + self.timeout
        content = OutputBuffer(self.max_bytes)
        response: requests.Response | None = None
        watchdog = self.watchdog
        if self.progress is not None:  # a cancel shuts the call's connections, as its deadline would
            self.progress.when_cancelled(watchdog.cancel)
        try:
            with watchdog, self.session as session:
                if self.problem is not None:
                    raise self.problem
                if self.ahead is not None:
                    _settle(self.ahead)
                if watchdog.cancelled:
                    return _cancelled(None, content)
                response = session.send(self.request, **self.send_kwargs)
                if watchdog.cancelled:
                    response.close()
                    return _cancelled(None, content)
                if watchdog.expired:
                    # Cut off mid-headers, http.client may still make a response of what came.
                    response.close()
                    response = None
                    return _timed_out(None, content, self.timeout)
                with response:
                    complete = _read_body(response, content, deadline=deadline, watchdog=watchdog)
        except egress.EgressDenied as exc:
            return Outcome(status="failed", error=str(exc))
        except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
            if watchdog.cancelled:
                return _cancelled(response, content)
            if watchdog.expired or isinstance(exc, requests.Timeout | urllib3.exceptions.TimeoutError):
                return _timed_out(response, content, self.timeout)
            return Outcome(
                status="failed",
                status_code=response.status_code if response is not None else None,
                response_body=content.text() if response is not None else "",
                error=f"{type(exc).__name__}: {_short(_redact(str(exc), self.job_headers))}",
            )
        if watchdog.cancelled:
            return _cancelled(response, content)
        if not complete:
            return _timed_out(response, content, self.timeout)
        ok = 200 <= response.status_code < 400
        return Outcome(
            status="success" if ok else "failed",
            status_code=response.status_code,
            response_body=content.text(),
            error="" if ok else f"HTTP {response.status_code} {response.reason or ''}".strip(),
        )


def _environment_settings(session: requests.Session, url: str) -> dict[str, Any]:
    """``session.merge_environment_settings(url, {}, True, None, None)`` (the proxies and CA bundle
    the environment names for ``url``), remembered by the URL's scheme and host and the variables
    it reads. requests reads the proxy variables by walking the whole environment twice, a few
    tenths of a millisecond per call in a worker; a worker's environment does not change, so
    only those variables are looked at again (in one pass over the raw environment), and a
    change to them (a test's) is seen at the next call."""
    parts = urlsplit(url)
    key = (parts.scheme, parts.netloc, _proxy_environment())
    cached = _settings_cache.get(key)
    if cached is None:
        cached = dict(session.merge_environment_settings(url, {}, True, None, None))
        if len(_settings_cache) >= 1024:
            _settings_cache.clear()
        _settings_cache[key] = cached
    return {**cached, "proxies": dict(cached["proxies"])}


_settings_cache: dict[tuple[str, str, tuple[Any, ...]], dict[str, Any]] = {}
# What requests' and urllib's environment lookups read: every ``*_proxy`` (any case), the CA
# bundles, and REQUEST_METHOD (urllib ignores HTTP_PROXY under CGI).
_ENVIRONMENT_NAMES = {"REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "REQUEST_METHOD"}
_ENVIRONMENT_NAMES_RAW = {name.encode() for name in _ENVIRONMENT_NAMES}


def _proxy_environment() -> tuple[Any, ...]:
    raw = getattr(os.environ, "_data", None)  # POSIX: the encoded variables, read without decoding each
    if isinstance(raw, dict) and all(isinstance(name, bytes) for name in raw):
        return tuple(
            sorted(
                item for item in raw.items() if item[0][-6:].lower() == b"_proxy" or item[0] in _ENVIRONMENT_NAMES_RAW
            )
        )
    return tuple(
        sorted(
            item
            for item in os.environ.items()
            if item[0][-6:].lower() == "_proxy" or item[0].upper() in _ENVIRONMENT_NAMES
        )
    )


def _connect_ahead(pool: HTTPConnectionPool, within: float) -> BaseHTTPConnection | None:
    """Open one connection of ``pool`` now, each step (connect, TLS handshake) bounded by
    ``within`` seconds, and leave it in the pool, where the call finds it (urllib3 drops it
    there if the server closed it meanwhile). Whatever happens, the pool gets its slot back.
    Uses urllib3's ``_get_conn``/``_put_conn`` (urllib3 is pinned for that)."""
    conn = pool._get_conn()
    try:
        conn.timeout = within  # urllib3 sets the call's own timeout when it sends on it
        conn.connect()
    except Exception:  # noqa: BLE001 - send() connects again and reports what fails
        conn.close()
        return None
    finally:
        pool._put_conn(conn)
    return conn


def _settle(conn: BaseHTTPConnection) -> None:
    """Take in what a TLS 1.3 server sent after the handshake (its session tickets) on a
    connection opened ahead. urllib3 would take those waiting bytes for a closed connection and
    open another; bytes of any other kind, or a closed connection, do make it one to drop."""
    sock = conn.sock if isinstance(conn, HTTPConnection) else None
    if not isinstance(sock, ssl.SSLSocket):
        return
    timeout = sock.gettimeout()
    try:
        sock.settimeout(0)
        sock.recv(1)  # application data before a request, or b"" (closed): not to be used
    except ssl.SSLWantReadError:
        sock.settimeout(timeout)  # only tickets: the connection is as good as new
        return
    except OSError:
        pass
    conn.close()


def _read_body(response: requests.Response, content: OutputBuffer, *, deadline: float, watchdog: _Watchdog) -> bool:
    """Read the whole body into ``content`` (which keeps max_bytes); False if the deadline passed.

    ``read1`` returns whatever has arrived (at most READ_SIZE), so the deadline is checked
    between small reads; a read blocked on a silent server is ended by the watchdog.
    """
    while True:
        if watchdog.expired or time.monotonic() >= deadline:
            return False
        chunk = response.raw.read1(READ_SIZE, decode_content=True)  # gzip etc. undone, as requests does
        if not chunk:
            # A connection shut by the watchdog looks like the end of a body without a length.
            return not watchdog.expired
        content.add(chunk)


def _timed_out(response: requests.Response | None, content: OutputBuffer, timeout: float) -> Outcome:
    if response is None:
        return Outcome(
            status="timeout", error=_("No complete answer within %(timeout)s s.") % {"timeout": f"{timeout:g}"}
        )
    return Outcome(
        status="timeout",
        status_code=response.status_code,
        response_body=content.text(),
        error=_("The response body was still arriving after %(timeout)s s.") % {"timeout": f"{timeout:g}"},
    )


def _cancelled(response: requests.Response | None, content: OutputBuffer) -> Outcome:
    return Outcome(
        status="cancelled",
        status_code=response.status_code if response is not None else None,
        response_body=content.text() if response is not None else "",
        error=cancelled_error(_("the call's connection was closed.")),
    )


class _Watchdog:
    """Shuts down every socket of one request when its time is up, so blocked reads return.

    It keeps a duplicate of each socket: shutting a duplicate down ends the connection it
    shares, before, during and after a TLS handshake (which detaches the original socket
    object), and the duplicate is ours, so its descriptor cannot be reused by anyone else
    until ``__exit__`` closes it.
    """

    def __init__(self, seconds: float) -> None:
        self.expired = False
        self.cancelled = False
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._seconds = seconds
        self._alarm: _Alarm | None = None

    def __enter__(self) -> _Watchdog:
        self._alarm = _alarms().set(self._seconds, self._expire)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._alarm is not None:
            _alarms().clear(self._alarm)
        with self._lock:
            for sock in self._sockets:
                sock.close()
            self._sockets.clear()

    def watch(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.append(sock.dup())
            if self.expired or self.cancelled:  # connected after the deadline (a slow connect, a redirect)
                _shut(self._sockets[-1])

    def cancel(self) -> None:
        """The run was cancelled: shut its connections now (from the cancel watch's thread)."""
        with self._lock:
            self.cancelled = True
            for sock in self._sockets:
                _shut(sock)

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            for sock in self._sockets:
                _shut(sock)


class _Alarm:
    """One deadline of ``_Alarms``: ``callback`` is called at ``at`` (time.monotonic) unless cleared."""

    __slots__ = ("at", "callback", "cleared")

    def __init__(self, at: float, callback: Callable[[], None]) -> None:
        self.at = at
        self.callback = callback
        self.cleared = False

    def __lt__(self, other: _Alarm) -> bool:
        return self.at < other.at


def _nothing() -> None:
    pass


class _Alarms:
    """The watchdogs' deadlines, kept by one thread of the process: a ``threading.Timer`` per call
    started a thread per call (a batch of 20 calls, 20 more threads), which cost about as much
    CPU as the rest of making the call ready. The thread is started at the first deadline, in
    the process that sets it (a worker's pool process, after the fork), and lives on."""

    def __init__(self) -> None:
        self._lock = threading.Condition()
        self._heap: list[_Alarm] = []
        self._cleared = 0  # cleared alarms still in the heap
        self._thread: threading.Thread | None = None

    def set(self, seconds: float, callback: Callable[[], None]) -> _Alarm:
        alarm = _Alarm(time.monotonic() + seconds, callback)
        with self._lock:
            heapq.heappush(self._heap, alarm)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="crontask-call-deadlines", daemon=True)
                self._thread.start()
            if self._heap[0] is alarm:
                self._lock.notify()
        return alarm

    def clear(self, alarm: _Alarm) -> None:
        with self._lock:
            if alarm.cleared:
                return
            alarm.cleared = True  # dropped from the heap when it comes up (no search for it now)
            alarm.callback = _nothing  # what the call's watchdog holds is free at once
            self._cleared += 1
            # Calls with long timeouts that end early would otherwise pile up until their deadlines.
            if self._cleared > 64 and self._cleared * 2 > len(self._heap):
                self._heap = [kept for kept in self._heap if not kept.cleared]
                heapq.heapify(self._heap)
                self._cleared = 0

    def _run(self) -> None:
        while True:
            with self._lock:
                while self._heap and self._heap[0].cleared:
                    heapq.heappop(self._heap)
                    self._cleared -= 1
                if not self._heap:
                    self._lock.wait()
                    continue
                wait = self._heap[0].at - time.monotonic()
                if wait > 0:
                    self._lock.wait(wait)
                    continue
                alarm = heapq.heappop(self._heap)
            try:
                alarm.callback()
            except Exception:  # one watchdog's failure must not stop the others'
                logging.getLogger(__name__).exception("a call's deadline could not be applied")


def _alarms() -> _Alarms:
    """This process's deadlines (made again in a forked child: the parent's thread is not there)."""
    return _process_alarms.get()


_process_alarms = PerProcess(_Alarms)


def _shut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


class _CallSession(requests.Session):
    """A session whose redirects to another origin drop every header the call was given.

    requests drops only ``Authorization`` there: a job's ``X-Api-Key`` would reach the
    redirect's host. Dropped: the job's headers, a manual run's override headers and the run's
    ``X-Crontask-*`` identity headers (not secret, but the new host is a stranger). The
    origin test is requests' own for ``Authorization`` (another host, port or scheme, but
    http→https on the default ports is the same origin). Once dropped, they stay dropped for
    the later hops. Only our User-Agent is sent on.
    """

    def __init__(self, *, dropped_on_redirect: Mapping[str, str]) -> None:
        super().__init__()
        self.dropped_on_redirect = tuple(dropped_on_redirect)

    def prepare_request(self, request: requests.Request) -> requests.PreparedRequest:
        """requests' own, without its merges where there is nothing to merge: a call's session has no
        cookies, parameters, auth or hooks of its own, and a call's request none of those either (its
        URL, headers and body only). requests merges each of them anyway (about two thirds of the
        CPU of making the call ready, mostly ``isinstance`` checks against its runtime protocols).
        Here the same ``PreparedRequest`` steps run in the same order on the same values: the
        session's headers under the request's, the URL (remembered: the same URL is prepared the
        same way), no cookies (an empty jar, so no ``Cookie`` header of its own), the body, the
        netrc or URL credentials, the hooks. Anything else is left to requests
        (``tests/runs/test_http_prepare.py`` holds the two to the same result)."""
        plain = (
            not (request.cookies or request.params or request.files) and request.json is None and request.auth is None
        )
        if not plain or self.cookies or self.params or self.auth or any(self.hooks.values()):
            return super().prepare_request(request)
        url = str(request.url)
        prepared = requests.PreparedRequest()
        prepared.prepare_method(request.method)
        prepared.url = _prepared_url(url)
        headers = CaseInsensitiveDict(self.headers)
        headers.update(request.headers)
        prepared.prepare_headers({name: value for name, value in headers.items() if value is not None})
        prepared._cookies = RequestsCookieJar()  # type: ignore[attr-defined]  # what prepare_cookies keeps of an empty jar
        prepared.prepare_body(request.data, None, None)
        prepared.prepare_auth(get_netrc_auth(url) if self.trust_env else None, url)
        prepared.prepare_hooks(request.hooks)
        return prepared

    def rebuild_auth(self, prepared_request: requests.PreparedRequest, response: requests.Response) -> None:
        super().rebuild_auth(prepared_request, response)
        if self.should_strip_auth(response.request.url, prepared_request.url):
            for name in self.dropped_on_redirect:
                prepared_request.headers.pop(name, None)
            prepared_request.headers["User-Agent"] = USER_AGENT

    def resolve_redirects(
        self,
        resp: requests.Response,
        req: requests.PreparedRequest,
        *args: Any,
        yield_requests: bool = False,
        **kwargs: Any,
    ) -> Iterator[requests.Response | requests.PreparedRequest]:
        if yield_requests:
            # requests asks this, when not following, only to fill Response.next, and reads the
            # whole 3xx body to do so: the body is the outcome's, read by _read_body (bounded).
            return iter(())
        return super().resolve_redirects(resp, req, *args, **kwargs)


class _WatchedAdapter(EgressAdapter):
    """The egress policy's adapter (``jobs.egress_http``), showing each socket to the watchdog.
    The session, and so its pools, live for one request only: nothing else uses them. A call
    sends one request at a time, so each pool keeps one connection (requests' default of ten
    slots were filled and emptied for every call, a sixth of the CPU of making it ready). Only one
    connection of a pool is ever out at a time (the one opened ahead is put back before the
    request takes it); were a second asked for, it would be opened, not waited for, and closed
    when given back (urllib3 logs that the pool was full)."""

    def __init__(self, watchdog: _Watchdog) -> None:
        self.watcher = watchdog.watch
        self._found: tuple[tuple[Any, ...], HTTPConnectionPool] | None = None
        super().__init__(pool_maxsize=1)

    def get_connection_with_tls_context(
        self,
        request: requests.PreparedRequest,
        verify: bool | str | None,
        proxies: Mapping[str, str] | None = None,
        cert: tuple[str, str] | str | None = None,
    ) -> HTTPConnectionPool:
        """The pool for ``request``, looked up once for the same URL and settings: ``HttpCall``
        looks it up when the call is made ready, and requests' ``send`` asks again with the same
        request. The pool depends on nothing else while the adapter is open, so the second answer is
        the first (the host's egress check, which reads only the host and the settings, and requests'
        pool key are not made again); a redirect to another URL, or any other change, is looked up
        anew, and ``close`` forgets it with the pools."""
        key = (request.url, verify, tuple(sorted((proxies or {}).items())), cert)
        if self._found is not None and self._found[0] == key:
            return self._found[1]
        pool = super().get_connection_with_tls_context(request, verify, proxies=proxies, cert=cert)
        self._found = (key, pool)
        return pool

    def close(self) -> None:
        self._found = None
        super().close()


@functools.lru_cache(maxsize=1024)
def _prepared_url(url: str) -> str:
    """``url`` as ``PreparedRequest.prepare_url`` writes it (no parameters): quoted, its host IDNA
    encoded, a bare host given its "/". A URL it refuses raises as it did, each time (an error is
    not remembered)."""
    request = requests.PreparedRequest()
    request.prepare_url(url, {})
    return str(request.url)


def _refused_header(headers: Mapping[str, Any]) -> str:
    """Why a header cannot be sent, naming the header but never showing its value.

    requests' and http.client's own errors quote the value, which is often a secret.
    """
    for position, (name, value) in enumerate(headers.items(), start=1):
        try:
            check_header_validity((name, value))
            name.encode("ascii")
            if isinstance(value, str):
                value.encode("latin-1")
        except (requests.exceptions.InvalidHeader, UnicodeEncodeError, AttributeError):
            if not (isinstance(name, str) and name.isascii() and _HEADER_NAME.fullmatch(name)):
                # A broken name may be a whole "Name: value" line pasted in: not shown either.
                return _("InvalidHeader: the name of header #%(position)s is not a valid header name.") % {
                    "position": position
                }
            return _(
                "InvalidHeader: the value of header %(name)s cannot be sent (leading whitespace, "
                "a line break, or a character outside Latin-1); the value is not shown."
            ) % {"name": repr(name)}
    return ""


_HEADER_NAME = re.compile(r"[^:\s][^:\r\n]*")  # what requests and http.client accept


def _redact(text: str, headers: Mapping[str, Any]) -> str:
    """``text`` with every header value it quotes masked, in case an error message quotes one.

    Every value, not only the secret ones: this runs before the message is cut short, which could
    cut a value in two, and the secret ones are masked again when the outcome is stored."""
    return mask_values(text, value_forms(headers.values()))


def _short(text: str) -> str:
    return text if len(text) <= 500 else text[:500] + "…"
