"""DingTalk (钉钉) group robot: ``{"msgtype": "text", "text": {"content": ...}}``.

With a signing secret ("加签", the ``SEC…`` string), the URL gets ``timestamp`` (milliseconds) and
``sign``: the HMAC-SHA256 of ``"<timestamp>\\n<secret>"`` keyed by the secret, base64-encoded,
then URL-encoded. The robot answers HTTP 200 with ``{"errcode": 0, "errmsg": "ok"}``, and a
non-zero ``errcode`` when it refuses (bad signature, keyword missing, rate limit): a failure.

Format and signing: https://open.dingtalk.com/document/robots/custom-robot-access and
https://open.dingtalk.com/document/robots/customize-robot-security-settings
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from typing import TYPE_CHECKING, Any

from alerts.channels.base import Alert, check_robot_answer, post_json

if TYPE_CHECKING:
    from alerts.models import Channel


def payload(alert: Alert) -> dict[str, Any]:
    return {"msgtype": "text", "text": {"content": alert.text}}


def sign(secret: str, timestamp_ms: int) -> str:
    """The ``sign`` parameter, base64 (requests URL-encodes it as a query parameter)."""
    digest = hmac.new(secret.encode(), f"{timestamp_ms}\n{secret}".encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def send(channel: Channel, alert: Alert) -> None:
    params = None
    if channel.secret:
        timestamp = int(time.time() * 1000)
        params = {"timestamp": str(timestamp), "sign": sign(channel.secret, timestamp)}
    check_robot_answer(post_json(channel.target, payload(alert), params=params), "errcode", "errmsg")
