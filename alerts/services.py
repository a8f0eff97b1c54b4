"""Channels: validating, saving and testing them. One path for the API and the admin."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from django.core.exceptions import ValidationError
from django.core.validators import URLValidator, validate_email
from django.db import transaction
from django.db.models import Count
from django.utils import timezone
from django.utils.translation import gettext as _

from alerts import channels, messages, selectors
from alerts.models import AlertRule, Channel, Incident, Notification
from alerts.secrets import mask_error, restore_channel_secrets
from jobs.egress import EgressDenied, check_host

FIELDS = ("name", "kind", "target", "secret", "enabled")
URL_KINDS = frozenset(Channel.Kind.values) - {Channel.Kind.EMAIL}
_url = URLValidator(schemes=["http", "https"])


def channel_clean(data: Mapping[str, Any], *, stored: Channel | None = None) -> dict[str, Any]:
    """The channel's fields once ``data`` (all of them, or some for a change of ``stored``) is
    applied: masked secrets given their stored values, every field checked. ValidationError keyed
    by field, with every problem at once."""
    fields = {name: getattr(stored, name) for name in FIELDS} if stored is not None else {"secret": "", "enabled": True}
    fields |= restore_channel_secrets({k: v for k, v in data.items() if k in FIELDS}, stored)
    problems: dict[str, str] = {}
    name = str(fields.get("name") or "").strip()
    if not name:
        problems["name"] = _("A channel needs a name.")
    kind = fields.get("kind")
    if kind not in Channel.Kind.values:
        problems["kind"] = _("%(given)r is not one of %(values)s.") % {
            "given": kind,
            "values": ", ".join(Channel.Kind.values),
        }
    target = str(fields.get("target") or "").strip()
    if not target:
        problems["target"] = _("A channel needs a target: a URL, or email addresses for email.")
    elif kind == Channel.Kind.EMAIL:
        bad = [address for address in _addresses(target) if not _is_email(address)]
        if bad or not _addresses(target):
            message = _("Not email addresses: %(given)s (give them comma-separated).")
            problems["target"] = message % {"given": ", ".join(bad) or repr(target)}
    elif kind in URL_KINDS:
        problem = _url_problem(target)
        if problem:
            problems["target"] = problem
    if problems:
        raise ValidationError(problems)
    return {**fields, "name": name, "target": target, "secret": str(fields.get("secret") or "")}


def _addresses(target: str) -> list[str]:
    return [address.strip() for address in target.split(",") if address.strip()]


def _is_email(address: str) -> bool:
    try:
        validate_email(address)
    except ValidationError:
        return False
    return True


def _url_problem(target: str) -> str | None:
    try:
        _url(target)
    except ValidationError:
        return _("Enter an http:// or https:// URL.")
    try:
        check_host(urlsplit(target).hostname)
    except EgressDenied as exc:
        return str(exc)
    return None


def channel_create(*, data: Mapping[str, Any]) -> Channel:
    return Channel.objects.create(**channel_clean(data))


def channel_update(*, channel: Channel, data: Mapping[str, Any]) -> Channel:
    for name, value in channel_clean(data, stored=channel).items():
        setattr(channel, name, value)
    channel.save()
    return channel


def channel_delete(*, channel: Channel) -> None:
    """Delete ``channel``. A rule it leaves with no channel tells no one: its open incidents are
    closed, as a disabled rule's are, so that it alerts afresh once it has a channel again."""
    with transaction.atomic():
        orphaned = AlertRule.objects.filter(channels=channel).annotate(count=Count("channels")).filter(count=1)
        Incident.objects.filter(rule__in=list(orphaned), closed_at__isnull=True).update(closed_at=timezone.now())
        channel.delete()
        transaction.on_commit(selectors.rules_changed)


def channel_test(*, channel: Channel) -> Notification:
    """Send a test message through ``channel`` now, disabled or not, and record it. Never raises
    for the channel's failure: the record's status and error say how it went."""
    text = messages.build_message(Notification.Event.TEST)
    notification = Notification.objects.create(channel=channel, event=Notification.Event.TEST, message=text, attempts=1)
    try:
        channels.send(channel, messages.alert_for(Notification.Event.TEST, text))
    except channels.DeliveryFailed as exc:
        notification.status, notification.error = Notification.Status.FAILED, mask_error(channel, str(exc))
    else:
        notification.status, notification.sent_at = Notification.Status.SENT, timezone.now()
    with transaction.atomic():
        notification.save(update_fields=["status", "error", "sent_at"])
    return notification
