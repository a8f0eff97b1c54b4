"""The egress policy of HTTP jobs: which hosts and addresses a job may reach (SSRF).

One policy, two checks:

- ``check_host(host)``: the host of a URL as written, a name or an address in any spelling,
  never resolved. Made when a job is saved (``jobs.validators``) and before each request of a
  run, redirects included. DNS at save time would prove nothing: a name may resolve elsewhere
  when the job runs.
- ``check_address(ip, host=...)``: the address a connection actually reached. The HTTP executor
  calls it with the socket's peer right after connecting, before a byte is sent (TLS included),
  so a name that resolves, or is made to resolve (DNS rebinding), to a denied address is refused.

Denied: ``BUILTIN_DENY`` and ``BUILTIN_DENY_NAMES`` (link-local, cloud metadata services, the
unspecified address), always, plus ``CRONTASK_EGRESS_DENY``. With ``CRONTASK_EGRESS_ALLOW`` set,
a target must also be on that list. Addresses are normalised first: an IPv4-mapped or
IPv4-compatible IPv6 address is its IPv4 address, and the IPv4 address inside a NAT64, 6to4 or
Teredo address is denied with it; ``127.1``, ``2130706433`` and ``0x7f.0.0.1`` are 127.0.0.1.
"""

from __future__ import annotations

import functools
import ipaddress
import re
import socket
from collections.abc import Iterable
from dataclasses import dataclass, field

from django.conf import settings
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop

from core.env import Network, host_entry

Address = ipaddress.IPv4Address | ipaddress.IPv6Address

METADATA = gettext_noop("a cloud metadata address")
# Always denied, whatever the settings say. Metadata services hand out the instance's credentials.
BUILTIN_DENY: tuple[tuple[str, str], ...] = (
    ("169.254.169.254/32", METADATA),  # AWS, GCP, Azure, OCI, DigitalOcean, OpenStack, Hetzner…
    ("fd00:ec2::254/128", METADATA),  # AWS (IPv6)
    ("fd20:ce::254/128", METADATA),  # Google Cloud (IPv6)
    ("100.100.100.200/32", METADATA),  # Alibaba Cloud
    ("168.63.129.16/32", METADATA),  # Azure WireServer
    ("192.0.0.192/32", METADATA),  # Oracle Cloud (legacy)
    ("169.254.0.0/16", gettext_noop("link-local")),  # also AWS ECS task credentials (169.254.170.2)
    ("fe80::/10", gettext_noop("link-local")),
    ("0.0.0.0/8", gettext_noop("an unspecified ('this host') address")),  # connecting to 0.0.0.0 reaches loopback
    ("::/128", gettext_noop("the unspecified address")),
)
# Each also denies the names under it.
BUILTIN_DENY_NAMES: tuple[str, ...] = (
    "metadata.google.internal",  # Google Cloud
    "metadata.goog",  # Google Cloud
    "metadata",  # Google Cloud's short name
    "instance-data",  # AWS
    "instance-data.ec2.internal",  # AWS
    "metadata.tencentyun.com",  # Tencent Cloud
)
BUILT_IN = gettext_noop("CRONTASK_EGRESS_DENY, built in")

_NAT64 = ipaddress.ip_network("64:ff9b::/96")
# Host spellings that resolvers read as an IPv4 address (inet_aton): "127.1", "0x7f000001", "017700000001".
_NUMERIC_HOST = re.compile(r"(?:0x[0-9a-f]*|[0-9]+)(?:\.(?:0x[0-9a-f]*|[0-9]+)){0,3}")


class EgressDenied(Exception):
    """A target the egress policy refuses. The message names the target and the rule."""


@dataclass(frozen=True)
class _Rule:
    network: Network
    why: str  # what the network is (translated when shown); empty for a network of the settings
    source: str

    def reason(self) -> str:
        return _(self.why) if self.why else _("in %(network)s") % {"network": self.network}


@dataclass(frozen=True)
class Policy:
    deny: tuple[_Rule, ...]
    deny_names: tuple[tuple[str, str], ...]  # (name, source)
    allow: tuple[Network, ...] | None  # None: no allow list
    allow_names: tuple[str, ...]
    # The checks this policy passed, by what was checked: a worker's calls go to the same few
    # hosts and addresses, each checked against every rule twice a call (its host, then the
    # address connected). A policy is built once per value of the settings, so a change to them
    # is a new policy with nothing passed yet. A refusal is not kept: it is checked (and its
    # message written) each time.
    passed: dict[tuple[str, str, str], bool] = field(default_factory=dict, init=False, compare=False, repr=False)

    @classmethod
    def build(cls, deny: Iterable[str], allow: Iterable[str]) -> Policy:
        rules = [_Rule(ipaddress.ip_network(cidr), why, BUILT_IN) for cidr, why in BUILTIN_DENY]
        names = [(name, BUILT_IN) for name in BUILTIN_DENY_NAMES]
        for item in deny:
            entry = host_entry(item)
            if isinstance(entry, str):
                names.append((entry, "CRONTASK_EGRESS_DENY"))
            else:
                rules.append(_Rule(entry, "", "CRONTASK_EGRESS_DENY"))
        allowed = [host_entry(item) for item in allow]
        return cls(
            deny=tuple(rules),
            deny_names=tuple(names),
            allow=tuple(entry for entry in allowed if not isinstance(entry, str)) if allowed else None,
            allow_names=tuple(entry for entry in allowed if isinstance(entry, str)),
        )

    def check_host(self, host: str | None) -> None:
        """Refuse ``host`` (a URL's host, brackets or not) if it is a denied address or name, or
        is not allowed. A name is only refused if the lists name it: its addresses are checked
        at connect time."""
        key = ("host", host or "", "")
        if key in self.passed:
            return
        self._check_host(host)
        self._passed(key)

    def _check_host(self, host: str | None) -> None:
        name = _normal_name(host)
        if not name:
            return
        address = parse_address(name)
        if address is not None:
            self._check(address, text=name, host="")
            return
        for denied, source in self.deny_names:
            if _under(name, denied):
                under = _("under %(name)s") % {"name": denied}
                why = _("a cloud metadata host name") if source == BUILT_IN else under
                raise EgressDenied(
                    _("Egress denied: %(target)s is %(why)s (%(source)s).")
                    % {"target": name, "why": why, "source": _source(source)}
                )
        if self.allow is not None and not self.allow and not self.name_allowed(name):
            raise EgressDenied(_("Egress denied: %(target)s is not in CRONTASK_EGRESS_ALLOW.") % {"target": name})

    def check_address(self, ip: str, *, host: str = "") -> None:
        """Refuse a connection to ``ip``, reached for ``host``: denied addresses always, and with
        an allow list, addresses outside it unless ``host`` is a name the list allows."""
        key = ("address", ip, host)
        if key in self.passed:
            return
        self._check_address(ip, host=host)
        self._passed(key)

    def _check_address(self, ip: str, *, host: str) -> None:
        address = parse_address(ip)
        if address is None:
            raise EgressDenied(_("Egress denied: %(address)s is not an IP address.") % {"address": repr(ip)})
        name = _normal_name(host)
        self._check(address, text=ip, host=name if parse_address(name) is None else "")

    def _passed(self, key: tuple[str, str, str]) -> None:
        if len(self.passed) >= 4096:  # a worker calling ever new hosts: start again
            self.passed.clear()
        self.passed[key] = True

    def name_allowed(self, name: str) -> bool:
        name = _normal_name(name)
        return any(_under(name, allowed) for allowed in self.allow_names)

    def _check(self, address: Address, *, text: str, host: str) -> None:
        """``address`` (spelt ``text``), reached for the name ``host`` if any."""
        forms = _forms(address)
        same = text == str(forms[0])
        if host:
            shown = f"{host} ({text})" if same else f"{host} ({text} = {forms[0]})"
        else:
            shown = text if same else f"{text} (= {forms[0]})"
        for form in forms:
            for rule in self.deny:
                if form.version == rule.network.version and form in rule.network:
                    if form != forms[0]:
                        shown = _("%(target)s (via %(address)s)") % {"target": shown, "address": form}
                    raise EgressDenied(
                        _("Egress denied: %(target)s is %(why)s (%(source)s).")
                        % {"target": shown, "why": rule.reason(), "source": _source(rule.source)}
                    )
        if self.allow is None or (host and self.name_allowed(host)):
            return
        if not any(forms[0].version == net.version and forms[0] in net for net in self.allow):
            raise EgressDenied(_("Egress denied: %(target)s is not in CRONTASK_EGRESS_ALLOW.") % {"target": shown})


def parse_address(text: str) -> Address | None:
    """``text`` as an IP address, in any spelling a resolver accepts, or None if it is a name."""
    text = text.strip().strip("[]")
    try:
        address = ipaddress.ip_address(text.split("%", 1)[0])  # the zone of fe80::1%eth0 is no part of it
    except ValueError:
        pass
    else:
        return address
    if _NUMERIC_HOST.fullmatch(text.lower()):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(text))
        except OSError:
            return None
    return None


def policy() -> Policy:
    """The policy of the current settings (built once per distinct value)."""
    return _policy(tuple(settings.CRONTASK_EGRESS_DENY), tuple(settings.CRONTASK_EGRESS_ALLOW or ()))


@functools.lru_cache(maxsize=8)
def _policy(deny: tuple[str, ...], allow: tuple[str, ...]) -> Policy:
    return Policy.build(deny, allow)


def check_host(host: str | None) -> None:
    policy().check_host(host)


def check_address(ip: str, *, host: str = "") -> None:
    policy().check_address(ip, host=host)


def _forms(address: Address) -> list[Address]:
    """The address as it is reached first, then any IPv4 address it carries to another network."""
    if isinstance(address, ipaddress.IPv4Address):
        return [address]
    if address.ipv4_mapped is not None:
        return [address.ipv4_mapped]
    value = int(address)
    if 1 < value < 2**32:  # IPv4-compatible (::a.b.c.d, deprecated); :: and ::1 are themselves
        return [ipaddress.IPv4Address(value)]
    carried = []
    if address in _NAT64:
        carried.append(ipaddress.IPv4Address(value & 0xFFFFFFFF))
    if address.sixtofour is not None:
        carried.append(address.sixtofour)
    if address.teredo is not None:
        carried.extend(address.teredo)
    return [address, *carried]


def _source(source: str) -> str:
    """Where a rule comes from, as shown: the built-in list's words translated, a setting's name as is."""
    return _(source) if source == BUILT_IN else source


def _normal_name(host: str | None) -> str:
    return (host or "").strip().strip("[]").lower().removesuffix(".")


def _under(name: str, entry: str) -> bool:
    return name == entry or name.endswith("." + entry)
