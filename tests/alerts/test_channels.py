"""Each kind of channel against a real local receiver: the documented payload, the signing, and
the robots' refusals (HTTP 200 with an error code) recorded as failures."""

from __future__ import annotations

import json

import pytest

from alerts import services
from alerts.models import Channel, Notification
from tests.alerts.receiver import SECRET

pytestmark = pytest.mark.django_db


def channel(kind: str, target: str, secret: str = "") -> Channel:
    return services.channel_create(data={"name": kind, "kind": kind, "target": target, "secret": secret})


def sent_json(receiver, path: str) -> dict:
    return json.loads(next(body for p, _, _, body in receiver.requests if p == path))


@pytest.mark.parametrize(
    ("kind", "path", "secret"),
    [
        ("webhook", "/webhook", SECRET),
        ("slack", "/slack", ""),
        ("dingtalk", "/dingtalk", ""),
        ("dingtalk", "/dingtalk/signed", SECRET),
        ("feishu", "/feishu", ""),
        ("feishu", "/feishu/signed", SECRET),
        ("wecom", "/wecom", ""),
    ],
)
def test_a_test_message_reaches_each_kind_of_receiver_in_its_format(receiver, kind, path, secret):
    notification = services.channel_test(channel=channel(kind, receiver.url + path, secret))
    assert (notification.status, notification.error, notification.attempts) == ("sent", "", 1)
    assert notification.sent_at is not None
    assert receiver.hits[path] == 1
    assert "test message" in json.dumps(sent_json(receiver, path))


def test_the_webhook_sends_the_event_signed_over_the_exact_body(receiver):
    services.channel_test(channel=channel("webhook", receiver.url + "/webhook", SECRET))
    _, headers, _, body = receiver.requests[0]
    assert headers["Content-Type"].startswith("application/json")
    assert headers["X-Crontask-Signature"].startswith("sha256=")
    data = json.loads(body)
    assert data["event"] == "test"
    assert data["subject"] == "[Crontask] Test message"


def test_a_webhook_without_a_secret_sends_no_signature(receiver):
    notification = services.channel_test(channel=channel("webhook", receiver.url + "/webhook"))
    assert notification.status == "failed"
    assert "X-Crontask-Signature" not in receiver.requests[0][1]
    assert notification.error.startswith("HTTP 401")


@pytest.mark.parametrize(
    ("kind", "path", "reason"),
    [
        ("webhook", "/webhook", "HTTP 401: bad signature"),
        ("dingtalk", "/dingtalk/signed", "errcode 310000: sign not match"),
        ("feishu", "/feishu/signed", "code 19021: sign match fail"),
    ],
)
def test_a_wrong_signing_secret_is_a_failure_with_the_receivers_reason(receiver, kind, path, reason):
    notification = services.channel_test(channel=channel(kind, receiver.url + path, "not-the-secret"))
    assert notification.status == "failed"
    assert reason in notification.error


def test_a_robot_that_answers_200_with_an_error_code_failed(receiver):
    notification = services.channel_test(channel=channel("wecom", receiver.url + "/wecom/refuses"))
    assert notification.status == "failed"
    assert "errcode 93000: invalid webhook url" in notification.error


def test_the_dingtalk_signature_goes_in_the_query_and_the_feishu_one_in_the_body(receiver):
    services.channel_test(channel=channel("dingtalk", receiver.url + "/dingtalk/signed?access_token=tok", SECRET))
    services.channel_test(channel=channel("feishu", receiver.url + "/feishu/signed", SECRET))
    (_, _, ding_query, ding_body), (_, _, _, feishu_body) = receiver.requests
    assert set(ding_query) == {"access_token", "timestamp", "sign"}
    assert set(json.loads(ding_body)) == {"msgtype", "text"}
    assert set(json.loads(feishu_body)) == {"timestamp", "sign", "msg_type", "content"}


def test_an_unreachable_channel_is_recorded_as_failed_not_raised():
    notification = services.channel_test(channel=channel("slack", "http://127.0.0.1:9/hook"))
    assert notification.status == "failed"
    assert "ConnectionError" in notification.error


def test_an_error_quoting_the_channels_secrets_is_masked(receiver):
    target = receiver.url + "/nowhere?access_token=tok-abcdef-123456"
    notification = services.channel_test(channel=channel("dingtalk", target, "sec-abcdef-123456"))
    assert notification.status == "failed"
    assert "HTTP 404: no receiver at /nowhere?access_token=********" in notification.error
    assert "tok-abcdef-123456" not in notification.error
    assert Notification.objects.get().error == notification.error


def test_email_goes_to_every_address_through_a_real_smtp_server(smtp):
    notification = services.channel_test(channel=channel("email", "ops@example.com, dev@example.com"))
    assert notification.status == "sent", notification.error
    (message,) = smtp.messages
    assert message["To"] == "ops@example.com, dev@example.com"
    assert message["Subject"] == "[Crontask] Test message"
    assert "this channel works" in message.get_payload()


def test_email_with_no_smtp_server_is_a_failure(settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", 9
    notification = services.channel_test(channel=channel("email", "ops@example.com"))
    assert notification.status == "failed"
    assert "ConnectionRefusedError" in notification.error


def test_a_name_that_reaches_a_denied_address_is_refused_when_it_connects(receiver, settings):
    port = receiver.server_address[1]
    slack_channel = channel("slack", f"http://localhost:{port}/slack")  # a name: allowed as written
    settings.CRONTASK_EGRESS_DENY = ["127.0.0.0/8", "::1/128"]
    notification = services.channel_test(channel=slack_channel)
    assert notification.status == "failed"
    assert "Egress denied: localhost (" in notification.error  # the address it reached, named
    assert receiver.hits["/slack"] == 0


def test_an_address_denied_after_the_channel_was_saved_is_refused_before_sending(receiver, settings):
    slack_channel = channel("slack", receiver.url + "/slack")
    settings.CRONTASK_EGRESS_DENY = ["127.0.0.0/8"]
    notification = services.channel_test(channel=slack_channel)
    assert notification.status == "failed"
    assert "Egress denied" in notification.error
    assert receiver.hits["/slack"] == 0
