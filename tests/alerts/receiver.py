"""A real local HTTP receiver for notifications: a webhook that verifies its signature, and robots
that check their documented payload and signing and answer as the real ones do (HTTP 200 with an
error code in the JSON body when they refuse)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

SECRET = "SEC-test-signing-secret"


class _Handler(BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        parts = urlsplit(self.path)
        query = {key: values[0] for key, values in parse_qs(parts.query).items()}
        self.server.record(parts.path, dict(self.headers), query, body)
        code, answer = self._answer(parts.path, dict(self.headers), query, body)
        payload = answer if isinstance(answer, bytes) else json.dumps(answer).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _answer(self, path: str, headers: dict[str, str], query: dict[str, str], body: bytes) -> tuple[int, Any]:
        try:
            data = json.loads(body)
        except ValueError:
            return 400, b"not JSON"
        if path.startswith("/flaky/"):  # fails the first N requests, then takes them
            failures = int(path.rsplit("/", 1)[1])
            return (500, b"down") if self.server.hits[path] <= failures else (200, b"ok")
        if path == "/webhook":
            expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
            if not hmac.compare_digest(headers.get("X-Crontask-Signature", ""), expected):
                return 401, b"bad signature"
            return (200, b"ok") if {"event", "subject", "text", "job", "run"} <= set(data) else (400, b"shape")
        if path == "/slack":
            shaped = set(data) == {"text"} and isinstance(data["text"], str)
            return (200, b"ok") if shaped else (400, b"invalid_payload")
        if path.startswith("/dingtalk"):
            if path == "/dingtalk/signed" and not _dingtalk_signed(query):
                return 200, {"errcode": 310000, "errmsg": "sign not match"}
            shaped = data.get("msgtype") == "text" and isinstance(data.get("text", {}).get("content"), str)
            return 200, ({"errcode": 0, "errmsg": "ok"} if shaped else {"errcode": 40035, "errmsg": "bad param"})
        if path.startswith("/feishu"):
            if path == "/feishu/signed" and not _feishu_signed(data):
                return 200, {"code": 19021, "msg": "sign match fail or timestamp is not within one hour"}
            shaped = data.get("msg_type") == "text" and isinstance(data.get("content", {}).get("text"), str)
            return 200, ({"code": 0, "msg": "success", "data": {}} if shaped else {"code": 9499, "msg": "Bad Request"})
        if path == "/wecom":
            shaped = data.get("msgtype") == "text" and isinstance(data.get("text", {}).get("content"), str)
            return 200, ({"errcode": 0, "errmsg": "ok"} if shaped else {"errcode": 40008, "errmsg": "invalid type"})
        if path == "/wecom/refuses":
            return 200, {"errcode": 93000, "errmsg": "invalid webhook url"}
        return 404, f"no receiver at {self.path}".encode()  # quotes the URL, as some servers do

    def log_message(self, format: str, *args: object) -> None:
        pass


def _dingtalk_signed(query: dict[str, str]) -> bool:
    """DingTalk's check: sign == base64(HMAC-SHA256(secret, "timestamp\\nsecret")) (query-decoded)."""
    timestamp = query.get("timestamp", "")
    digest = hmac.new(SECRET.encode(), f"{timestamp}\n{SECRET}".encode(), hashlib.sha256).digest()
    return timestamp.isdigit() and len(timestamp) == 13 and query.get("sign") == base64.b64encode(digest).decode()


def _feishu_signed(data: dict[str, Any]) -> bool:
    """Feishu's check: sign == base64(HMAC-SHA256(key="timestamp\\nsecret", message=b""))."""
    timestamp = data.get("timestamp", "")
    digest = hmac.new(f"{timestamp}\n{SECRET}".encode(), b"", hashlib.sha256).digest()
    return isinstance(timestamp, str) and len(timestamp) == 10 and data.get("sign") == base64.b64encode(digest).decode()


class Receiver(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.hits: Counter[str] = Counter()
        self.requests: list[tuple[str, dict[str, str], dict[str, str], bytes]] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}"

    def record(self, path: str, headers: dict[str, str], query: dict[str, str], body: bytes) -> None:
        with self._lock:
            self.hits[path] += 1
            self.requests.append((path, headers, query, body))

    def __enter__(self) -> Receiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
        self.server_close()
