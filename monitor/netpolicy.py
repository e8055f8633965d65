"""The network policy: which addresses a fetch may connect to, hop by hop.

A watched page is untrusted: it may redirect, or (rendered) load subresources, towards
the monitor's own network (``127.0.0.1``, ``10.x``, a cloud's metadata service at
``169.254.169.254``). Both fetchers ask this module about every hop *after* its host
name is resolved, so a number written as a host (``http://2130706435/``), an
IPv4-mapped IPv6 address (``[::ffff:127.0.0.1]``) or a DNS name pointing inwards is
judged by the address it really reaches. Each address falls in one class, first
match wins:

    denied      ``defaults.network.deny``: never, not even as the watch's own URL
    allowed     ``defaults.network.allow``: always (overrides the two classes below)
    restricted  link-local, cloud metadata, unspecified, multicast, reserved: never
    internal    loopback, private, shared (CGNAT), unique-local: only as the watch's own
                URL, or as a redirect from an internal address (an intranet's own hops)
    public      everything else: always

So an operator may watch an intranet page, but a public page can never lead a fetch
inside. This module is pure apart from ``resolve`` (one DNS lookup).
"""

from __future__ import annotations

import asyncio
import enum
import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass, field

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def _networks(*cidrs: str) -> tuple[IPNetwork, ...]:
    return tuple(ipaddress.ip_network(cidr) for cidr in cidrs)


RESTRICTED: tuple[IPNetwork, ...] = _networks(
    "169.254.0.0/16",  # link-local, and AWS/GCP/Azure/OpenStack metadata at .169.254
    "100.100.100.200/32",  # Alibaba Cloud metadata
    "fe80::/10",  # IPv6 link-local
    "fd00:ec2::254/128",  # AWS metadata over IPv6
    "0.0.0.0/8",  # "this network": 0.0.0.0 reaches the host itself on Linux
    "::/128",
    "224.0.0.0/4",  # multicast
    "ff00::/8",
    "240.0.0.0/4",  # reserved, and the broadcast address
)
"""Refused unless ``allow`` names them: no policy page lives there."""

INTERNAL: tuple[IPNetwork, ...] = _networks(
    "127.0.0.0/8",  # loopback
    "10.0.0.0/8",  # private
    "172.16.0.0/12",
    "192.168.0.0/16",
    "100.64.0.0/10",  # shared address space (carrier-grade NAT, cloud VPCs)
    "192.0.0.0/24",  # IETF protocol assignments
    "198.18.0.0/15",  # benchmarking
    "::1/128",
    "fc00::/7",  # unique-local
    "fec0::/10",  # site-local (deprecated)
)
"""The monitor's own side of the network: a public page may not lead there."""

_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class AddressClass(enum.StrEnum):
    DENIED = "denied"
    ALLOWED = "allowed"
    RESTRICTED = "restricted"
    INTERNAL = "internal"
    PUBLIC = "public"


@dataclass(frozen=True)
class NetworkPolicy:
    """``defaults.network`` of the watchlist over the built-in ranges.

    ``internal`` and ``restricted`` are the built-in ranges; they are fields so that a
    test can say which loopback address plays the public one.
    """

    allow: tuple[IPNetwork, ...] = ()
    deny: tuple[IPNetwork, ...] = ()
    internal: tuple[IPNetwork, ...] = INTERNAL
    restricted: tuple[IPNetwork, ...] = RESTRICTED

    def classify(self, address: IPAddress) -> AddressClass:
        """The class of one address, an embedded IPv4 address judged as itself."""
        address = unwrapped(address)
        for networks, kind in (
            (self.deny, AddressClass.DENIED),
            (self.allow, AddressClass.ALLOWED),
            (self.restricted, AddressClass.RESTRICTED),
            (self.internal, AddressClass.INTERNAL),
        ):
            if any(address in network for network in networks):
                return kind
        return AddressClass.PUBLIC


def unwrapped(address: IPAddress) -> IPAddress:
    """The IPv4 address inside an IPv4-mapped, NAT64 or 6to4 IPv6 address, else itself."""
    if isinstance(address, ipaddress.IPv4Address):
        return address
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address.sixtofour or address


@dataclass(frozen=True)
class Hop:
    """One request of a fetch: the policy, and whether it may reach an internal address.

    ``internal_ok`` is true for the watch's own URL and for a redirect from an internal
    address; a redirect from a public address, and every request a rendered public
    page makes, may not lead inside.
    """

    policy: NetworkPolicy = field(default_factory=NetworkPolicy)
    internal_ok: bool = True

    def refusal(self, addresses: Iterable[IPAddress]) -> str | None:
        """Why this hop may not connect to these addresses (all must pass), or None."""
        for address in addresses:
            reason = self._refusal(address, internal_ok=self.internal_ok)
            if reason is not None:
                return reason
        return None

    def peer_refusal(self, peer: IPAddress, checked: Iterable[IPAddress]) -> str | None:
        """Why the address actually connected to is refused, or None.

        One that was checked passes; another one (the name resolved differently when
        connecting: DNS rebinding, or round-robin DNS) must be public or allowed, unless
        the checked addresses were internal themselves.
        """
        checked = tuple(checked)
        if peer in checked:
            return None
        internal_ok = self.internal_ok and self.internal(checked)
        reason = self._refusal(peer, internal_ok=internal_ok)
        return None if reason is None else f"{reason} (the name resolved anew when connecting)"

    def internal(self, addresses: Iterable[IPAddress]) -> bool:
        """Whether a hop to these addresses is on the internal side: its redirects may
        stay there."""
        return any(self.policy.classify(a) is AddressClass.INTERNAL for a in addresses)

    def _refusal(self, address: IPAddress, *, internal_ok: bool) -> str | None:
        kind = self.policy.classify(address)
        if kind is AddressClass.DENIED:
            return f"{address} is in defaults.network.deny"
        if kind is AddressClass.RESTRICTED:
            return f"{address} is {_describe(unwrapped(address))}"
        if kind is AddressClass.INTERNAL and not internal_ok:
            what = _describe(unwrapped(address))
            return f"a public page led to {address}, {what}"
        return None


def _describe(address: IPAddress) -> str:
    if address.is_loopback:
        return "a loopback address"
    if address.is_link_local:
        return "a link-local or cloud metadata address"
    if address.is_private:
        return "a private address"
    return "a restricted address (cloud metadata, multicast or reserved)"


async def resolve(host: str, port: int) -> tuple[IPAddress, ...]:
    """The addresses a host name (or an IP written in any form) resolves to.

    Raises ``socket.gaierror`` as the system resolver does.
    """
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return tuple(dict.fromkeys(ipaddress.ip_address(info[4][0]) for info in infos))
