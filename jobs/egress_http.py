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

import socket
from collections.abc import Callable, Mapping

import requests
import urllib3
from requests.adapters import HTTPAdapter
from requests.utils import select_proxy
from urllib3.connectionpool import HTTPConnectionPool

from jobs.egress import check_address, check_host


class EgressAdapter(HTTPAdapter):
    """An HTTPAdapter under the egress policy. ``watch`` sees each socket it opens (a subclass's
    watchdog); by default it does nothing."""

    def watch(self, sock: socket.socket) -> None:
        """Called with each new connection's socket, once its address passed."""

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
            check = check_address if not select_proxy(url, proxies) else None
            pool.ConnectionCls = _checked_connection(pool.ConnectionCls, self.watch, check)
        return pool


def _checked_connection(base: type, watch: Callable[[socket.socket], None], check: Callable[..., None] | None) -> type:
    class CheckedConnection(base):
        crontask_checked = True

        def _new_conn(self) -> socket.socket:
            sock = super()._new_conn()
            if check is not None:
                # The address actually connected, whatever the name resolved to. Fails closed if
                # it cannot be read.
                try:
                    check(sock.getpeername()[0], host=self.host)
                except BaseException:
                    sock.close()
                    raise
            watch(sock)
            return sock

    return CheckedConnection
