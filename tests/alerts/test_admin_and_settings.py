"""The admin's channel form (the service's checks, secrets masked and kept) and its test action;
the read-only notifications; EMAIL_URL."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured

from alerts import services
from alerts.models import Channel, Notification
from core.env import envemail
from jobs.secrets import MASK
from tests.alerts.receiver import SECRET

pytestmark = pytest.mark.django_db


def test_the_admin_form_shows_the_secret_masked_and_keeps_it_when_sent_back(admin_client, receiver):
    channel = services.channel_create(
        data={"name": "ops", "kind": "webhook", "target": receiver.url + "/webhook", "secret": SECRET}
    )
    page = admin_client.get(f"/admin/alerts/channel/{channel.pk}/change/").content.decode()
    assert SECRET not in page
    assert MASK in page
    form = {"name": "renamed", "kind": "webhook", "target": receiver.url + "/webhook", "secret": MASK, "enabled": "on"}
    response = admin_client.post(f"/admin/alerts/channel/{channel.pk}/change/", form)
    assert response.status_code == 302
    channel.refresh_from_db()
    assert (channel.name, channel.secret) == ("renamed", SECRET)


def test_the_admin_form_refuses_what_the_api_refuses(admin_client):
    form = {"name": "ops", "kind": "webhook", "target": "http://169.254.169.254/", "secret": "", "enabled": "on"}
    response = admin_client.post("/admin/alerts/channel/add/", form)
    assert response.status_code == 200
    assert "Egress denied" in response.content.decode()
    assert not Channel.objects.exists()


def test_the_admin_action_sends_a_test_message_and_reports_it(admin_client, receiver):
    good = services.channel_create(data={"name": "good", "kind": "slack", "target": receiver.url + "/slack"})
    bad = services.channel_create(data={"name": "bad", "kind": "wecom", "target": receiver.url + "/wecom/refuses"})
    response = admin_client.post(
        "/admin/alerts/channel/", {"action": "send_test_message", "_selected_action": [good.pk, bad.pk]}, follow=True
    )
    page = response.content.decode()
    assert "Good: the test message was sent." in page  # the admin capitalizes a message
    assert "Bad: The robot refused the message: errcode 93000" in page
    assert receiver.hits["/slack"] == 1
    assert sorted(Notification.objects.values_list("status", flat=True)) == ["failed", "sent"]


def test_notifications_are_read_only_in_the_admin(admin_client, receiver):
    channel = services.channel_create(data={"name": "good", "kind": "slack", "target": receiver.url + "/slack"})
    notification = services.channel_test(channel=channel)
    assert admin_client.get("/admin/alerts/notification/").status_code == 200
    page = admin_client.get(f"/admin/alerts/notification/{notification.pk}/change/").content.decode()
    assert 'name="_save"' not in page
    assert admin_client.get("/admin/alerts/notification/add/").status_code == 403


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("smtp://mail.local", ("mail.local", 25, "", "", False, False)),
        ("smtp+tls://bot%40corp:p%40ss@smtp.corp.com:2525", ("smtp.corp.com", 2525, "bot@corp", "p@ss", True, False)),
        ("smtp+ssl://u:p@smtp.corp.com", ("smtp.corp.com", 465, "u", "p", False, True)),
    ],
)
def test_email_url_gives_djangos_smtp_settings(monkeypatch, url, expected):
    monkeypatch.setenv("EMAIL_URL", url)
    names = ("EMAIL_HOST", "EMAIL_PORT", "EMAIL_HOST_USER", "EMAIL_HOST_PASSWORD", "EMAIL_USE_TLS", "EMAIL_USE_SSL")
    assert tuple(envemail("EMAIL_URL")[name] for name in names) == expected


@pytest.mark.parametrize("url", ["http://mail.local", "smtp://", "smtp://host:port"])
def test_a_bad_email_url_stops_the_start(monkeypatch, url):
    monkeypatch.setenv("EMAIL_URL", url)
    with pytest.raises(ImproperlyConfigured):
        envemail("EMAIL_URL")


def test_no_email_url_leaves_the_email_variables(monkeypatch):
    monkeypatch.delenv("EMAIL_URL", raising=False)
    assert envemail("EMAIL_URL") == {}
