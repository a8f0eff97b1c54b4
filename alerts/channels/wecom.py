"""WeCom (企业微信) group robot: ``{"msgtype": "text", "text": {"content": ...}}`` to its webhook
URL (``…/cgi-bin/webhook/send?key=…``; the key is the secret, and is masked as one). The robot
answers HTTP 200 with ``{"errcode": 0, "errmsg": "ok"}``, and a non-zero ``errcode`` when it
refuses: a failure. It has no signing; the channel's secret is not used.

Format: https://developer.work.weixin.qq.com/document/path/91770
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from alerts.channels.base import Alert, check_robot_answer, post_json

if TYPE_CHECKING:
    from alerts.models import Channel

#: WeCom refuses a text message longer than this many bytes.
MAX_BYTES = 2048


def payload(alert: Alert) -> dict[str, Any]:
    text = alert.text.encode()[:MAX_BYTES].decode(errors="ignore")
    return {"msgtype": "text", "text": {"content": text}}


def send(channel: Channel, alert: Alert) -> None:
    check_robot_answer(post_json(channel.target, payload(alert)), "errcode", "errmsg")
