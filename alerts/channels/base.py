"""What every sender shares: the alert it sends, its failure, and an HTTP POST under the egress policy.

The policy is the HTTP jobs' one (``jobs.egress``), applied as they apply it
(``jobs.egress_http.EgressAdapter``): the URL's host as written, before the request, and the
address each connection reached, right after connecting and before a byte is sent (a name that
resolves to a denied address is refused). Through a proxy from the environment, the proxy
connects, and only the host is checked.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import requests
from django.conf import settings
from django.utils.translation import gettext as _

from jobs.egress import EgressDenied
from jobs.egress_http import EgressAdapter

if TYPE_CHECKING:
    pass

USER_AGENT = "Crontask-Alerts/1"
#: At most this much of a receiver's answer is quoted in an error.
QUOTED = 300


@dataclass(frozen=True)
class Alert:
    """What is sent: a subject line, the message text, and the event's data (the webhook's JSON)."""

    event: str
    subject: str
    text: str
    data: dict[str, Any] = field(default_factory=dict)


class DeliveryFailed(Exception):
    """A channel refused or could not take an alert; the message says why (not yet masked)."""


def post_json(
    url: str, payload: Any, *, headers: dict[str, str] | None = None, params: dict[str, str] | None = None
) -> requests.Response:
    """POST ``payload`` as JSON to ``url``; DeliveryFailed unless the answer is a 2xx.

    The host is checked against the egress policy first (as a job's is) and redirects are not
    followed: a receiver that moves is a misconfigured channel, not a hop to take blindly."""
    body = json.dumps(payload, ensure_ascii=False).encode()
    return post_body(url, body, headers=headers, params=params)


def post_body(
    url: str, body: bytes, *, headers: dict[str, str] | None = None, params: dict[str, str] | None = None
) -> requests.Response:
    sent = {"Content-Type": "application/json; charset=utf-8", "User-Agent": USER_AGENT, **(headers or {})}
    try:  # the egress policy: EgressAdapter checks the host, then the address each connection reached
        with requests.Session() as session:
            session.mount("http://", EgressAdapter())
            session.mount("https://", EgressAdapter())
            response = session.post(
                url,
                data=body,
                headers=sent,
                params=params,
                timeout=settings.CRONTASK_ALERT_TIMEOUT,
                allow_redirects=False,
            )
    except EgressDenied as exc:
        raise DeliveryFailed(str(exc)) from None
    except requests.RequestException as exc:
        raise DeliveryFailed(f"{type(exc).__name__}: {exc}") from None
    if not 200 <= response.status_code < 300:
        raise DeliveryFailed(f"HTTP {response.status_code}: {response.text[:QUOTED]}")
    return response


def check_robot_answer(response: requests.Response, code_key: str, message_key: str) -> None:
    """Chat robots answer HTTP 200 to a refused message, with an error code in the JSON body."""
    try:
        answer = response.json()
    except ValueError:
        raise DeliveryFailed(
            _("The robot's answer is not JSON: %(answer)s") % {"answer": response.text[:QUOTED]}
        ) from None
    code = answer.get(code_key, 0) if isinstance(answer, dict) else None
    if code not in (0, None) or not isinstance(answer, dict):
        message = answer.get(message_key, "") if isinstance(answer, dict) else answer
        refused = _("The robot refused the message: %(key)s %(code)s: %(message)s")
        raise DeliveryFailed(refused % {"key": code_key, "code": code, "message": str(message)[:QUOTED]})
