"""A plain webhook: the event as JSON, POSTed to the channel's URL.

With a secret, the body is signed: ``X-Crontask-Signature: sha256=<hex>``, the HMAC-SHA256 of the
exact bytes of the body with the secret as key (the scheme GitHub's webhooks use). A receiver
recomputes it over the raw body and compares in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import TYPE_CHECKING

from alerts.channels.base import Alert, post_body

if TYPE_CHECKING:
    from alerts.models import Channel

SIGNATURE_HEADER = "X-Crontask-Signature"


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def send(channel: Channel, alert: Alert) -> None:
    body = json.dumps({"event": alert.event, "subject": alert.subject, "text": alert.text, **alert.data}).encode()
    headers = {SIGNATURE_HEADER: signature(channel.secret, body)} if channel.secret else {}
    post_body(channel.target, body, headers=headers)
