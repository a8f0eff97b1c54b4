"""The egress policy (``jobs.egress``) on requests' connections, for whatever calls out on a job's
behalf: the HTTP executor (``runs.executors.http``) and the alert channels (``alerts.channels``).

``EgressAdapter`` checks each request's host as written, and gives each connection pool a
connection class that checks the address it actually reached, right after the TCP connect and
before the TLS handshake or a byte of the request, so a name that resolves to a denied address
is refused however it resolved. Through a proxy (HTTP_PROXY/HTTPS_PROXY in the environment) the
proxy resolves the name and makes the connection: only the host is checked, and the proxy, which
the operator configured, must filter the addresses it connects to.
"""

from __future__ import annotations

import functools
import socket
from collections.abc import Callable, Mapping
from typing import Any

import requests
import urllib3
from requests.adapters import HTTPAdapter
from requests.utils import select_proxy
from urllib3.connectionpool import HTTPConnectionPool

from jobs.egress import check_address, check_host

Watch = Callable[[socket.socket], None]


class EgressAdapter(HTTPAdapter):
    """An HTTPAdapter under the egress policy. ``watcher``, if set (a subclass's watchdog), is
    called with each new connection's socket, once its address passed."""

    watcher: Watch | None = None

    def get_connection_with_tls_context(
        self,
        request: requests.PreparedRequest,
        verify: bool | str | None,
        proxies: Mapping[str, str] | None = None,
        cert: tuple[str, str] | str | None = None,
    ) -> HTTPConnectionPool:
        # Here, not in send(): a connection opened ahead (runs.executors.http) is found here too.
        url = request.url or ""  # set once prepared; requests' types allow None
        check_host(urllib3.util.parse_url(url).host)
        # types-requests says ConnectionPool; requests returns its PoolManager's connection_from_host().
        pool: HTTPConnectionPool = super().get_connection_with_tls_context(  # type: ignore[assignment]
            request, verify, proxies=proxies, cert=cert
        )
        if not getattr(pool.ConnectionCls, "crontask_checked", False):
            pool.ConnectionCls = _checked_connection(pool.ConnectionCls, checks_address=not select_proxy(url, proxies))
            pool.conn_kw = {**pool.conn_kw, "crontask_watch": self.watcher}  # given to each connection it makes
        return pool


@functools.cache
def _checked_connection(base: type, *, checks_address: bool) -> type:
    """``base`` (urllib3's connection class of a pool) checking the address each new connection
    reached (unless through a proxy) and showing its socket to the ``crontask_watch`` its pool gives
    it. One class per base and kind, made once: a class made for each pool (each HTTP call) cost
    as much as the check itself, and left a cycle for the garbage collector."""

    class CheckedConnection(base):
        crontask_checked = True

        def __init__(self, *args: Any, crontask_watch: Watch | None = None, **kw: Any) -> None:
            super().__init__(*args, **kw)
            self.crontask_watch = crontask_watch

        def _new_conn(self) -> socket.socket:
            sock = super()._new_conn()
            if checks_address:
                # The address actually connected, whatever the name resolved to. Fails closed if
                # it cannot be read.
                try:
                    check_address(sock.getpeername()[0], host=self.host)
                except BaseException:
                    sock.close()
                    raise
            if self.crontask_watch is not None:
                self.crontask_watch(sock)
            return sock

    return CheckedConnection
