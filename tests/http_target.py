"""A real local HTTP server for jobs to call: answers by path and counts the requests."""

from __future__ import annotations

import contextlib
import gzip
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

DRIP = 0.5  # seconds between the bytes of /drip/ and /drip-headers/


class _Handler(BaseHTTPRequestHandler):
    server: HttpTarget

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        self.server.record(self.command, self.path, dict(self.headers), body)
        if self.path.startswith("/status/"):
            code = int(self.path.rsplit("/", 1)[1])
            self._send(code, f"status {code}".encode())
        elif self.path.startswith("/big/"):
            self._send(200, b"x" * int(self.path.rsplit("/", 1)[1]))
        elif self.path.startswith("/slow/"):
            time.sleep(float(self.path.rsplit("/", 1)[1]))
            self._send(200, b"slow")
        elif self.path.startswith("/slowfail/"):
            time.sleep(float(self.path.rsplit("/", 1)[1]))
            self._send(500, b"slow failure")
        elif self.path.startswith("/switch/"):
            # /switch/<name>: answers the status the test set in ``switches[name]`` (200 unless set)
            self._send(self.server.switches.get(self.path.rsplit("/", 1)[1], 200), b"switch")
        elif self.path.startswith("/flaky/"):
            # fails the first N requests to this path, then succeeds
            failures = int(self.path.rsplit("/", 1)[1])
            self._send(500 if self.server.hits[self.path] <= failures else 200, b"flaky")
        elif self.path.startswith("/drip/"):
            self._drip_body(int(self.path.rsplit("/", 1)[1]))
        elif self.path.startswith("/drip-headers/"):
            self._drip_headers(int(self.path.rsplit("/", 1)[1]))
        elif self.path == "/gzip":
            self._send(200, gzip.compress(b"unzipped " * 100), encoding="gzip")
        elif self.path == "/nul":
            self._send(200, b"a\x00b")
        elif self.path == "/echo":
            self._send(200, body)
        elif self.path.startswith("/redirect/"):
            # /redirect/<code>?to=<url>: answers <code> with Location <url>
            parts = urlsplit(self.path)
            self._send(int(parts.path.rsplit("/", 1)[1]), b"moved", location=parse_qs(parts.query)["to"][0])
        elif self.path == "/echo-headers":
            self._send(200, "".join(f"{name}: {value}\n" for name, value in self.headers.items()).encode())
        else:
            self._send(200, b"pong")

    def _send(self, code: int, payload: bytes, encoding: str = "", location: str = "") -> None:
        self.send_response(code)
        self.send_header("Content-Type", "text/plain")
        if location:
            self.send_header("Location", location)
        if encoding:
            self.send_header("Content-Encoding", encoding)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    def _drip_body(self, size: int) -> None:
        """Headers at once, then a body of ``size`` bytes, one byte every DRIP seconds."""
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(size))
        self.end_headers()
        self._trickle(b"d" * size)

    def _drip_headers(self, size: int) -> None:
        """The status line, then ``size`` bytes of a header one every DRIP seconds: never a body."""
        self.wfile.write(b"HTTP/1.1 200 OK\r\nX-Slow: ")
        self._trickle(b"h" * size)
        with contextlib.suppress(OSError):
            self.wfile.write(b"\r\nContent-Length: 0\r\n\r\n")
        self.close_connection = True

    def _trickle(self, data: bytes) -> None:
        for i in range(len(data)):
            try:
                self.wfile.write(data[i : i + 1])
                self.wfile.flush()
            except OSError:  # the client gave up, as it should
                self.close_connection = True
                return
            time.sleep(DRIP)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _answer

    def log_message(self, format: str, *args: object) -> None:
        pass


class HttpTarget(ThreadingHTTPServer):
    daemon_threads = True
    # socketserver's default backlog of 5 drops connections when many calls arrive at once, and
    # each dropped one is retried by TCP a second later: a real server listens with 128 or more.
    request_queue_size = 128

    def __init__(self, host: str = "127.0.0.1") -> None:
        super().__init__((host, 0), _Handler)
        self.hits: Counter[str] = Counter()
        self.switches: dict[str, int] = {}  # /switch/<name>'s status, set by a test
        self.requests: list[tuple[str, str, dict, bytes]] = []
        self.arrivals: list[tuple[float, str]] = []  # (time.time(), path) of each request
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        assert isinstance(host, str)  # an AF_INET server's address
        return f"http://{host}:{port}"

    def record(self, method: str, path: str, headers: dict, body: bytes) -> None:
        with self._lock:
            self.hits[path] += 1
            self.requests.append((method, path, headers, body))
            self.arrivals.append((time.time(), path))

    def __enter__(self) -> HttpTarget:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
        self.server_close()
