"""The senders, one module per kind of channel; ``send`` picks the channel's."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from alerts.channels import dingtalk, email, feishu, slack, webhook, wecom
from alerts.channels.base import Alert, DeliveryFailed

if TYPE_CHECKING:
    from alerts.models import Channel

__all__ = ["SENDERS", "Alert", "DeliveryFailed", "send"]

SENDERS: dict[str, Callable[[Channel, Alert], None]] = {
    "email": email.send,
    "webhook": webhook.send,
    "slack": slack.send,
    "dingtalk": dingtalk.send,
    "feishu": feishu.send,
    "wecom": wecom.send,
}


def send(channel: Channel, alert: Alert) -> None:
    """Send ``alert`` through ``channel``; DeliveryFailed (never anything else) if it did not go."""
    try:
        SENDERS[channel.kind](channel, alert)
    except DeliveryFailed:
        raise
    except Exception as exc:  # a sender's bug or an odd answer is the channel's failure, not the caller's
        raise DeliveryFailed(f"{type(exc).__name__}: {exc}") from exc
