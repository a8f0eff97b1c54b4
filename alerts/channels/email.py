"""Email: Django's ``send_mail`` through the SMTP server of the settings (``EMAIL_URL`` or the
``EMAIL_*`` variables, docs/contract.md), to the channel's comma-separated addresses."""

from __future__ import annotations

import smtplib
from typing import TYPE_CHECKING

from django.conf import settings
from django.core.mail import send_mail

from alerts.channels.base import Alert, DeliveryFailed

if TYPE_CHECKING:
    from alerts.models import Channel


def addresses(target: str) -> list[str]:
    return [address.strip() for address in target.split(",") if address.strip()]


def send(channel: Channel, alert: Alert) -> None:
    try:
        send_mail(alert.subject, alert.text, settings.DEFAULT_FROM_EMAIL, addresses(channel.target))
    except (smtplib.SMTPException, OSError) as exc:
        raise DeliveryFailed(f"{type(exc).__name__}: {exc}") from None
