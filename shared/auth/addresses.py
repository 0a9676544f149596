"""Which addresses an outbound fetch to an admin-chosen URL may connect to (SSRF).

Checked on the exact address of every connection attempt, after DNS, so a name that resolves (or
re-resolves) to a forbidden address is refused. Always refused: unspecified, link-local (169.254/16,
fe80::/10, where cloud metadata lives), known metadata and platform addresses, multicast, reserved and
other non-global ranges. Loopback only in development (GATEWAY_DEV_ALLOW_HTTP_LOOPBACK); private ranges
(site-local fec0::/10 included) only for a provider that opts in (an in-cluster Kubernetes issuer).

IPv6 spellings of IPv4 addresses are judged by the IPv4 address they carry, so no spelling of a
private, loopback or metadata address gets through: IPv4-mapped (::ffff:a.b.c.d, which is that IPv4
address on the wire), IPv4-compatible (::a.b.c.d) and IPv4-translated (::ffff:0:a.b.c.d), NAT64
(64:ff9b::/96), 6to4 (2002::/16) and Teredo (2001::/32, server and client). Forms that are deprecated or
only local are refused whatever they carry: IPv4-compatible, IPv4-translated, local-use NAT64
(64:ff9b:1::/48, where the IPv4 address sits wherever the network's operator chose) and Teredo.
"""

from __future__ import annotations

import errno
import ipaddress
import socket
from collections.abc import Callable
from dataclasses import dataclass

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

METADATA = frozenset(ipaddress.ip_address(a) for a in (
    "169.254.169.254",   # AWS, Azure IMDS, GCP, OpenStack
    "168.63.129.16",     # Azure wire server / platform DNS
    "100.100.100.200",   # Alibaba Cloud
    "fd00:ec2::254",     # AWS IMDS over IPv6
))
PRIVATE = tuple(ipaddress.ip_network(n) for n in (
    "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "fc00::/7", "fec0::/10"))
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_COMPATIBLE = ipaddress.ip_network("::/96")
_TRANSLATED = ipaddress.ip_network("::ffff:0:0:0/96")
# IPv6 forms refused whatever IPv4 address they carry, with the reason.
_REFUSED_FORMS = (
    (_COMPATIBLE, "is an IPv4-compatible address (deprecated)"),
    (_TRANSLATED, "is an IPv4-translated address"),
    (ipaddress.ip_network("64:ff9b:1::/48"), "is a local-use NAT64 address"),
    (ipaddress.ip_network("2001::/32"), "is a Teredo tunnel address"),
)
_SIXTOFOUR = ipaddress.ip_network("2002::/16")


@dataclass(frozen=True, slots=True)
class AddressPolicy:
    allow_loopback: bool = False     # development only
    allow_private: bool = False      # the provider opted in
    require_loopback: bool = False   # plain http: loopback or nothing

    def refusal(self, address: str) -> str | None:
        """Why a connection to `address` is refused, or None when it is allowed."""
        try:
            ip = ipaddress.ip_address(address.split("%", 1)[0])
        except ValueError:
            return f"{address!r} is not an IP address"
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped        # on the wire this is the IPv4 address
        for embedded in _embedded(ip):   # first: the IPv4 address says more than the form carrying it
            # a carried loopback address is some other host's (a translator's, a relay's): never ours
            reason = self._refusal(embedded, carried=True)
            if reason:
                return f"{ip} embeds {embedded}, which {reason}"
        reason = self._refusal(ip)
        return f"{ip} {reason}" if reason else None

    def _refusal(self, ip: IPAddress, carried: bool = False) -> str | None:
        if self.require_loopback and not ip.is_loopback:
            return "is not a loopback address (plain http is allowed on loopback only)"
        if ip.is_unspecified:
            return "is the unspecified address"
        if ip.is_loopback:
            return None if self.allow_loopback and not carried else (
                "is a loopback address (allowed only with GATEWAY_DEV_ALLOW_HTTP_LOOPBACK=true)")
        if ip in METADATA:
            return "is a cloud metadata or platform address"
        if ip.is_link_local:
            return "is link-local (cloud metadata range)"
        if ip.is_multicast:
            return "is a multicast address"
        for net, why in _REFUSED_FORMS:
            if ip.version == net.version and ip in net:
                return why
        if any(ip in net for net in PRIVATE if net.version == ip.version):
            return None if self.allow_private else (
                "is a private address (allowed only for a provider with allow_private_network: true)")
        if not ip.is_global and not (ip.version == 6 and ip in _SIXTOFOUR):
            # Python 3.13 counts all of 2002::/16 as non-global; the IPv4 address a 6to4 address
            # carries was judged on its own above, and that is the verdict that counts.
            return "is not a public address"
        return None


def _embedded(ip: IPAddress) -> tuple[ipaddress.IPv4Address, ...]:
    """The IPv4 addresses an IPv6 address carries (none for an IPv4 address, :: or ::1)."""
    if not isinstance(ip, ipaddress.IPv6Address):
        return ()
    found: list[ipaddress.IPv4Address] = []
    if ip.sixtofour is not None:
        found.append(ip.sixtofour)
    if ip.teredo is not None:
        found.extend(ip.teredo)
    if ip in _NAT64 or ip in _TRANSLATED or (ip in _COMPATIBLE and int(ip) > 1):   # not :: or ::1
        found.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))   # the last 32 bits
    return tuple(found)


class AddressRefused(OSError):
    """Raised at connect time for an address the policy refuses; no packet is sent to it."""

    def __init__(self, reason: str) -> None:
        super().__init__(errno.EACCES, reason)
        self.reason = reason


def socket_factory(policy: AddressPolicy) -> Callable[[tuple], socket.socket]:  # type: ignore[type-arg]
    """For aiohttp's `TCPConnector(socket_factory=...)`: every address a connection is attempted to,
    after DNS and for each of happy eyeballs' attempts, is checked before a socket exists."""
    def make(addr_info: tuple) -> socket.socket:  # type: ignore[type-arg]
        family, type_, proto, _, sockaddr = addr_info
        reason = policy.refusal(str(sockaddr[0]))
        if reason is not None:
            raise AddressRefused(reason)
        return socket.socket(family=family, type=type_, proto=proto)

    return make
