"""Feishu / Lark (飞书) custom bot: ``{"msg_type": "text", "content": {"text": ...}}``.

With a signature-verification secret, the body also carries ``timestamp`` (seconds, as a string)
and ``sign``: the HMAC-SHA256 keyed by ``"<timestamp>\\n<secret>"`` over an empty message,
base64-encoded. The bot answers HTTP 200 with ``{"code": 0, ...}``, and a non-zero ``code`` when
it refuses (bad signature, keyword missing, rate limit): a failure.

Format and signing: https://open.feishu.cn/document/client-docs/bot-v3/add-custom-bot (Lark:
https://open.larksuite.com/document/client-docs/bot-v3/add-custom-bot)
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
    return {"msg_type": "text", "content": {"text": alert.text}}


def sign(secret: str, timestamp: int) -> str:
    digest = hmac.new(f"{timestamp}\n{secret}".encode(), b"", hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def send(channel: Channel, alert: Alert) -> None:
    body = payload(alert)
    if channel.secret:
        timestamp = int(time.time())
        body = {"timestamp": str(timestamp), "sign": sign(channel.secret, timestamp), **body}
    check_robot_answer(post_json(channel.target, body), "code", "msg")
