"""Slack: an incoming webhook takes ``{"text": ...}`` and answers 200 ``ok``, or 4xx with a reason.

Format: https://api.slack.com/messaging/webhooks (Slack's "Sending messages using incoming webhooks").
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from alerts.channels.base import Alert, post_json

if TYPE_CHECKING:
    from alerts.models import Channel


def payload(alert: Alert) -> dict[str, str]:
    return {"text": alert.text}


def send(channel: Channel, alert: Alert) -> None:
    post_json(channel.target, payload(alert))
