"""/api/channels/ and /api/notifications/: validation with field reasons, secrets masked, the
mask sent back keeping the stored value, the test action, the read-only notifications."""

from __future__ import annotations

import pytest

from alerts import services
from alerts.models import Channel, Notification
from jobs.secrets import MASK
from tests.alerts.receiver import SECRET

pytestmark = pytest.mark.django_db


def test_a_channel_is_created_and_shown_with_its_secrets_masked(api, receiver):
    target = receiver.url + "/dingtalk/signed?access_token=tok-1234567890"
    response = api.post(
        "/api/channels/", {"name": "ops", "kind": "dingtalk", "target": target, "secret": SECRET}, format="json"
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["secret"] == MASK
    assert body["target"] == receiver.url + f"/dingtalk/signed?access_token={MASK}"
    assert body["enabled"] is True
    listed = api.get("/api/channels/").json()
    assert SECRET not in str(listed)
    assert "tok-1234567890" not in str(listed)
    stored = Channel.objects.get()
    assert (stored.secret, stored.target) == (SECRET, target)


def test_the_masks_sent_back_keep_the_stored_secrets(api, receiver):
    target = receiver.url + "/dingtalk/signed?access_token=tok-1234567890"
    channel = services.channel_create(data={"name": "ops", "kind": "dingtalk", "target": target, "secret": SECRET})
    shown = api.get(f"/api/channels/{channel.pk}/").json()
    response = api.put(f"/api/channels/{channel.pk}/", {**shown, "name": "renamed"}, format="json")
    assert response.status_code == 200, response.content
    channel.refresh_from_db()
    assert (channel.name, channel.secret, channel.target) == ("renamed", SECRET, target)


def test_a_mask_for_a_secret_never_stored_is_refused(api):
    response = api.post(
        "/api/channels/",
        {"name": "ops", "kind": "webhook", "target": "http://127.0.0.1:9/", "secret": MASK},
        format="json",
    )
    assert response.status_code == 400
    assert "secret" in response.json()


@pytest.mark.parametrize(
    ("data", "field", "reason"),
    [
        ({"kind": "pager", "target": "http://127.0.0.1:9/"}, "kind", "is not a valid choice"),
        ({"kind": "slack", "target": "not a url"}, "target", "URL"),
        ({"kind": "slack", "target": "ftp://127.0.0.1/x"}, "target", "URL"),
        ({"kind": "webhook", "target": "http://169.254.169.254/latest/"}, "target", "Egress denied"),
        ({"kind": "feishu", "target": "http://metadata.google.internal/hook"}, "target", "Egress denied"),
        ({"kind": "email", "target": "ops@example.com, not-an-address"}, "target", "not-an-address"),
        ({"kind": "email", "target": " , "}, "target", "Not email addresses"),
        ({"kind": "webhook", "target": "http://127.0.0.1:9/", "name": " "}, "name", "blank"),
    ],
)
def test_a_bad_channel_is_refused_with_the_fields_reason(api, data, field, reason):
    response = api.post("/api/channels/", {"name": "ops", **data}, format="json")
    assert response.status_code == 400, response.content
    assert reason in str(response.json()[field])
    assert not Channel.objects.exists()


def test_the_egress_deny_list_applies_to_channels(api, settings):
    settings.CRONTASK_EGRESS_DENY = ["10.0.0.0/8"]
    response = api.post(
        "/api/channels/", {"name": "ops", "kind": "slack", "target": "http://10.1.2.3/hook"}, format="json"
    )
    assert response.status_code == 400
    assert "Egress denied" in str(response.json()["target"])


def test_a_change_to_the_kind_is_checked_against_the_stored_target(api):
    channel = services.channel_create(data={"name": "ops", "kind": "email", "target": "ops@example.com"})
    response = api.patch(f"/api/channels/{channel.pk}/", {"kind": "slack"}, format="json")
    assert response.status_code == 400
    assert "URL" in str(response.json()["target"])


def test_the_test_action_answers_with_the_outcome(api, receiver):
    good = services.channel_create(data={"name": "a", "kind": "slack", "target": receiver.url + "/slack"})
    bad = services.channel_create(data={"name": "b", "kind": "wecom", "target": receiver.url + "/wecom/refuses"})
    sent = api.post(f"/api/channels/{good.pk}/test/")
    assert sent.status_code == 200
    assert {key: sent.json()[key] for key in ("ok", "error")} == {"ok": True, "error": None}
    failed = api.post(f"/api/channels/{bad.pk}/test/").json()
    assert failed["ok"] is False
    assert "errcode 93000" in failed["error"]
    assert Notification.objects.get(pk=failed["notification"]).status == "failed"


def test_notifications_are_read_only_and_filtered(api, receiver):
    a = services.channel_create(data={"name": "a", "kind": "slack", "target": receiver.url + "/slack"})
    b = services.channel_create(data={"name": "b", "kind": "wecom", "target": receiver.url + "/wecom/refuses"})
    services.channel_test(channel=a)
    services.channel_test(channel=b)
    everything = api.get("/api/notifications/").json()
    assert everything["count"] == 2
    assert set(everything["results"][0]) == {
        *("id", "rule", "incident", "job", "run", "channel", "event", "status"),
        *("attempts", "error", "message", "sent_at", "created_at"),
    }
    failed = api.get("/api/notifications/", {"status": "failed"}).json()["results"]
    assert [(n["channel"], n["event"], n["attempts"]) for n in failed] == [(b.pk, "test", 1)]
    assert [n["channel"] for n in api.get("/api/notifications/", {"channel": a.pk}).json()["results"]] == [a.pk]
    assert api.get("/api/notifications/", {"event": "failed"}).json()["count"] == 0
    assert api.get("/api/notifications/", {"status": "nonsense"}).status_code == 400
    assert api.post("/api/notifications/", {}, format="json").status_code == 405
    assert api.delete(f"/api/notifications/{failed[0]['id']}/").status_code == 405


def test_channels_are_filtered_and_searched(api):
    services.channel_create(data={"name": "ops mail", "kind": "email", "target": "ops@example.com"})
    services.channel_create(data={"name": "dev hook", "kind": "webhook", "target": "http://127.0.0.1:9/"})
    assert [c["name"] for c in api.get("/api/channels/", {"kind": "email"}).json()["results"]] == ["ops mail"]
    assert [c["name"] for c in api.get("/api/channels/", {"search": "dev"}).json()["results"]] == ["dev hook"]


def test_a_slack_webhooks_token_is_masked_like_every_secret(api):
    """A Slack incoming webhook's URL is its credential: the last part of its path is shown masked."""
    target = "https://hooks.slack.com/services/T0001/B0002/abcDEF123xyz"
    channel = Channel.objects.create(name="ops", kind="slack", target=target)  # as stored; no DNS here
    shown = api.get(f"/api/channels/{channel.pk}/").json()
    assert shown["target"] == f"https://hooks.slack.com/services/T0001/B0002/{MASK}"
    assert "abcDEF123xyz" not in str(api.get("/api/channels/").json())
