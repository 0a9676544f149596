"""Which addresses a JWKS or discovery fetch may connect to (JWKS URIs are admin input: SSRF).

Checked on the exact address of every connection attempt, after DNS, so a name that resolves (or
re-resolves) to a forbidden address is refused. Always refused: unspecified, link-local (169.254/16,
fe80::/10, where cloud metadata lives), known metadata and platform addresses, multicast, reserved and
other non-global ranges. Loopback only in development (GATEWAY_DEV_ALLOW_HTTP_LOOPBACK); private ranges
only for a provider that opts in (an in-cluster Kubernetes issuer). IPv6 forms that embed an IPv4
address are judged by it: mapped ones as that address, 6to4,
Teredo and NAT64 ones by both.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

METADATA = frozenset(ipaddress.ip_address(a) for a in (
    "169.254.169.254",   # AWS, Azure IMDS, GCP, OpenStack
    "168.63.129.16",     # Azure wire server / platform DNS
    "100.100.100.200",   # Alibaba Cloud
    "fd00:ec2::254",     # AWS IMDS over IPv6
))
PRIVATE = tuple(ipaddress.ip_network(n) for n in (
    "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "fc00::/7"))
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


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
        for candidate in (ip, *_embedded(ip)):
            reason = self._refusal(candidate)
            if reason:
                return f"{ip} {reason}" if candidate == ip else f"{ip} embeds {candidate}, which {reason}"
        return None

    def _refusal(self, ip: IPAddress) -> str | None:
        if self.require_loopback and not ip.is_loopback:
            return "is not a loopback address (plain http is allowed on loopback only)"
        if ip.is_unspecified:
            return "is the unspecified address"
        if ip.is_loopback:
            return None if self.allow_loopback else (
                "is a loopback address (allowed only with GATEWAY_DEV_ALLOW_HTTP_LOOPBACK=true)")
        if ip in METADATA:
            return "is a cloud metadata or platform address"
        if ip.is_link_local:
            return "is link-local (cloud metadata range)"
        if ip.is_multicast:
            return "is a multicast address"
        if any(ip in net for net in PRIVATE if net.version == ip.version):
            return None if self.allow_private else (
                "is a private address (allowed only for a provider with allow_private_network: true)")
        if not ip.is_global:
            return "is not a public address"
        return None


def _embedded(ip: IPAddress) -> tuple[IPAddress, ...]:
    if not isinstance(ip, ipaddress.IPv6Address):
        return ()
    found: list[IPAddress] = []
    if ip.sixtofour is not None:
        found.append(ip.sixtofour)
    if ip.teredo is not None:
        found.extend(ip.teredo)
    if ip in _NAT64:
        found.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    return tuple(found)
