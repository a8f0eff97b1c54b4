"""The egress policy on its own: which hosts and addresses it refuses, and why."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured

from core.env import envhosts
from jobs.egress import EgressDenied, Policy, check_host, policy

DEFAULT = Policy.build([], [])


@pytest.mark.parametrize(
    ("host", "why"),
    [
        ("169.254.169.254", "169.254.169.254 is a cloud metadata address"),
        ("[::ffff:169.254.169.254]", "::ffff:169.254.169.254 (= 169.254.169.254) is a cloud metadata address"),
        ("::ffff:a9fe:a9fe", "(= 169.254.169.254) is a cloud metadata address"),
        ("[fd00:ec2::254]", "fd00:ec2::254 is a cloud metadata address"),
        ("100.100.100.200", "is a cloud metadata address"),
        ("169.254.170.2", "169.254.170.2 is link-local"),
        ("fe80::1", "fe80::1 is link-local"),
        ("fe80::1%eth0", "is link-local"),
        ("0.0.0.0", "is an unspecified ('this host') address"),  # noqa: S104
        ("[::]", ":: is the unspecified address"),
        ("metadata.google.internal", "metadata.google.internal is a cloud metadata host name"),
        ("Metadata.Google.Internal.", "metadata.google.internal is a cloud metadata host name"),
        ("metadata", "is a cloud metadata host name"),
        ("instance-data", "is a cloud metadata host name"),
        # NAT64 and 6to4 addresses carry an IPv4 address that is reached through them.
        ("64:ff9b::a9fe:a9fe", "(via 169.254.169.254) is a cloud metadata address"),
        ("2002:a9fe:a9fe::1", "(via 169.254.169.254) is a cloud metadata address"),
    ],
)
def test_it_always_denies_link_local_metadata_and_unspecified_targets(host, why):
    with pytest.raises(EgressDenied) as denied:
        DEFAULT.check_host(host)
    assert str(denied.value).startswith("Egress denied: ")
    assert why in str(denied.value)
    assert str(denied.value).endswith("(CRONTASK_EGRESS_DENY, built in).")


@pytest.mark.parametrize(
    "host", ["127.0.0.1", "localhost", "[::1]", "10.1.2.3", "192.168.0.10", "172.16.0.1", "fd12::1", "example.com"]
)
def test_it_allows_loopback_private_and_public_targets_by_default(host):
    DEFAULT.check_host(host)
    if host not in ("localhost", "example.com"):
        DEFAULT.check_address(host.strip("[]"))


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1", "127.1", "2130706433", "0x7f000001", "0x7f.0.0.1", "017700000001", "[::ffff:127.0.0.1]",
        "[::ffff:7f00:1]", "[::127.0.0.1]", "127.0.0.1.",
    ],
)  # fmt: skip
def test_each_spelling_of_an_address_is_the_address(host):
    loopback_denied = Policy.build(["127.0.0.0/8"], [])
    with pytest.raises(EgressDenied, match=r"is in 127\.0\.0\.0/8 \(CRONTASK_EGRESS_DENY\)\.$"):
        loopback_denied.check_host(host)


def test_names_that_merely_look_numeric_are_names():
    loopback_denied = Policy.build(["127.0.0.0/8"], [])
    for host in ("cafe.be", "deadbeef", "1.2.3.4.5", "0x7f.example"):
        loopback_denied.check_host(host)


def test_a_denied_name_denies_the_names_under_it_and_no_other():
    deny = Policy.build(["corp.example", "*.lan"], [])
    for host in ("corp.example", "api.corp.example", "CORP.example.", "printer.lan"):
        with pytest.raises(EgressDenied, match="CRONTASK_EGRESS_DENY"):
            deny.check_host(host)
    for host in ("notcorp.example", "example", "lan.example"):
        deny.check_host(host)


def test_a_name_is_not_resolved_by_check_host_only_its_spelling_counts():
    Policy.build(["127.0.0.0/8"], []).check_host("localhost")  # resolves to 127.0.0.1, refused at connect


def test_check_address_names_the_host_and_the_address_it_reached():
    deny = Policy.build(["127.0.0.0/8"], [])
    with pytest.raises(EgressDenied) as denied:
        deny.check_address("127.0.0.1", host="localhost")
    assert str(denied.value) == "Egress denied: localhost (127.0.0.1) is in 127.0.0.0/8 (CRONTASK_EGRESS_DENY)."
    with pytest.raises(EgressDenied, match=r"^Egress denied: ::ffff:169\.254\.169\.254 \(= 169\.254\.169\.254\)"):
        DEFAULT.check_address("::ffff:169.254.169.254")


def test_an_allowed_name_does_not_exempt_a_denied_address():
    allow = Policy.build([], ["api.example.com"])
    with pytest.raises(EgressDenied, match="is a cloud metadata address"):
        allow.check_address("169.254.169.254", host="api.example.com")


def test_an_allow_list_of_networks_restricts_addresses_and_leaves_names_to_connect_time():
    allow = Policy.build([], ["10.0.0.0/8"])
    allow.check_host("10.9.8.7")
    allow.check_host("[::ffff:10.0.0.1]")
    allow.check_host("service.internal")  # may resolve into 10/8: decided by the address reached
    with pytest.raises(EgressDenied, match=r"^Egress denied: 11\.0\.0\.1 is not in CRONTASK_EGRESS_ALLOW\.$"):
        allow.check_host("11.0.0.1")
    allow.check_address("10.0.0.1", host="service.internal")
    with pytest.raises(EgressDenied, match=r"service\.internal \(11\.0\.0\.1\) is not in CRONTASK_EGRESS_ALLOW"):
        allow.check_address("11.0.0.1", host="service.internal")


def test_an_allow_list_of_names_refuses_other_names_and_addresses_at_once():
    allow = Policy.build([], ["api.example.com"])
    allow.check_host("api.example.com")
    allow.check_host("v2.api.example.com")
    allow.check_address("203.0.113.5", host="api.example.com")  # wherever the allowed name resolves
    for host in ("example.com", "127.0.0.1"):
        with pytest.raises(EgressDenied, match="is not in CRONTASK_EGRESS_ALLOW"):
            allow.check_host(host)
    with pytest.raises(EgressDenied, match="is not in CRONTASK_EGRESS_ALLOW"):
        allow.check_address("203.0.113.5", host="other.example.com")


def test_the_allow_list_does_not_lift_the_built_in_deny_list():
    allow = Policy.build([], ["169.254.0.0/16", "metadata.google.internal"])
    with pytest.raises(EgressDenied, match="built in"):
        allow.check_host("169.254.169.254")
    with pytest.raises(EgressDenied, match="built in"):
        allow.check_host("metadata.google.internal")


def test_the_policy_follows_the_settings_and_is_built_once_per_value(settings):
    check_host("127.0.0.1")
    settings.CRONTASK_EGRESS_DENY = ["127.0.0.0/8"]
    with pytest.raises(EgressDenied):
        check_host("127.0.0.1")
    assert policy() is policy()


def test_the_settings_read_cidrs_addresses_and_names_from_the_environment(monkeypatch):
    monkeypatch.setenv("CRONTASK_EGRESS_DENY", " 10.0.0.0/8, 192.168.1.7 ,[fd00::1], *.Corp.Example., 10.1.2.3/8,,")
    assert envhosts("CRONTASK_EGRESS_DENY") == [
        "10.0.0.0/8", "192.168.1.7/32", "fd00::1/128", "corp.example", "10.0.0.0/8",
    ]  # fmt: skip
    monkeypatch.delenv("CRONTASK_EGRESS_DENY")
    assert envhosts("CRONTASK_EGRESS_DENY") == []


@pytest.mark.parametrize("value", ["10.0.0.0/33", "localhost:8080", "http://x.example", "10.0.0.256", "bad name"])
def test_a_bad_entry_in_the_settings_stops_the_process(monkeypatch, value):
    monkeypatch.setenv("CRONTASK_EGRESS_ALLOW", f"10.0.0.0/8,{value}")
    with pytest.raises(ImproperlyConfigured, match=r"^CRONTASK_EGRESS_ALLOW: "):
        envhosts("CRONTASK_EGRESS_ALLOW")


def test_a_passed_check_is_remembered_by_what_was_checked_and_a_refusal_never(monkeypatch):
    allow = Policy.build([], ["api.example.com"])
    allow.check_address("203.0.113.5", host="api.example.com")
    allow.check_host("api.example.com")
    for _ in range(2):  # refused each time, with its message
        with pytest.raises(EgressDenied, match=r"other\.example\.com \(203\.0\.113\.5\) is not in"):
            allow.check_address("203.0.113.5", host="other.example.com")
    checked: list[tuple[str, ...]] = []
    monkeypatch.setattr(Policy, "_check_address", lambda self, ip, *, host: checked.append((ip, host)))
    monkeypatch.setattr(Policy, "_check_host", lambda self, host: checked.append((host,)))
    allow.check_address("203.0.113.5", host="api.example.com")
    allow.check_host("api.example.com")
    assert checked == []  # both passed before: not checked again
    allow.check_address("203.0.113.6", host="api.example.com")
    allow.check_host("v2.api.example.com")
    assert checked == [("203.0.113.6", "api.example.com"), ("v2.api.example.com",)]
    assert Policy.build([], ["api.example.com"]).passed == {}  # a new policy (new settings) starts empty
