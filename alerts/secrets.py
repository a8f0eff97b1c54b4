"""A channel's secrets, by the project's one rule (``jobs.secrets``): the ``secret`` field, and the
secret parameters of its target URL (DingTalk's ``access_token``, WeCom's ``key``).

Shown masked; sent back masked, the stored value is kept; quoted in an error, masked.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy

from jobs.secrets import MASK, mask_message, mask_text, restore_masked_text, text_secret_values, value_forms

if TYPE_CHECKING:
    from alerts.models import Channel


UNKEPT = gettext_lazy(
    "The secret is the mask ********, which stands for a stored secret, and there is none to keep here: "
    "give the value itself."
)


def shown_secret(secret: str) -> str:
    return MASK if secret else ""


def shown_target(target: str) -> str:
    return mask_text(target)


def restore_channel_secrets(fields: Mapping[str, Any], stored: Channel | None) -> dict[str, Any]:
    """``fields`` with a masked ``secret`` or masked target parameters given their stored values."""
    restored = dict(fields)
    if fields.get("secret") == MASK:
        if stored is None or not stored.secret:
            raise ValidationError({"secret": UNKEPT})
        restored["secret"] = stored.secret
    if isinstance(fields.get("target"), str):
        restored["target"] = restore_masked_text(fields["target"], stored.target if stored else "", field="target")
    return restored


def channel_secret_values(channel: Channel) -> tuple[str, ...]:
    return value_forms([channel.secret, *text_secret_values(channel.target)])


def mask_error(channel: Channel, error: str) -> str:
    """An error about ``channel`` (a receiver's answer may quote the request), its secrets masked."""
    return mask_message(error, channel_secret_values(channel))
