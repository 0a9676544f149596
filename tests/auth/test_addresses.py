"""Every spelling of a loopback, private or metadata address is refused like the address itself: the
IPv6 forms that carry an IPv4 address (mapped, compatible, translated, NAT64, 6to4, Teredo) and the
deprecated site-local range. Public addresses in the same forms stay reachable."""

from __future__ import annotations

import pytest

from shared.auth.addresses import AddressPolicy

STRICT = AddressPolicy()
PRIVATE_OK = AddressPolicy(allow_private=True)
DEV = AddressPolicy(allow_loopback=True)

# (address, words of the refusal with the default policy; None: allowed)
TABLE = [
    # the IPv4 addresses themselves
    ("127.0.0.1", "loopback"),
    ("169.254.169.254", "cloud metadata"),
    ("168.63.129.16", "cloud metadata"),
    ("10.1.2.3", "private address"),
    ("8.8.8.8", None),
    # IPv4-mapped ::ffff:a.b.c.d: on the wire it is the IPv4 address
    ("::ffff:127.0.0.1", "127.0.0.1 is a loopback"),
    ("::ffff:a9fe:a9fe", "169.254.169.254 is a cloud metadata"),
    ("::ffff:10.1.2.3", "10.1.2.3 is a private"),
    ("::ffff:8.8.8.8", None),
    # IPv4-compatible ::a.b.c.d (deprecated): refused, naming what it carries
    ("::127.0.0.1", "embeds 127.0.0.1, which is a loopback"),
    ("::169.254.169.254", "embeds 169.254.169.254, which is a cloud metadata"),
    ("::10.1.2.3", "embeds 10.1.2.3, which is a private"),
    ("::8.8.8.8", "IPv4-compatible address"),
    # IPv4-translated ::ffff:0:a.b.c.d
    ("::ffff:0:127.0.0.1", "embeds 127.0.0.1"),
    ("::ffff:0:169.254.169.254", "embeds 169.254.169.254"),
    ("::ffff:0:8.8.8.8", "IPv4-translated address"),
    # NAT64, well-known prefix 64:ff9b::/96
    ("64:ff9b::127.0.0.1", "embeds 127.0.0.1, which is a loopback"),
    ("64:ff9b::169.254.169.254", "embeds 169.254.169.254, which is a cloud metadata"),
    ("64:ff9b::168.63.129.16", "embeds 168.63.129.16"),
    ("64:ff9b::10.1.2.3", "embeds 10.1.2.3, which is a private"),
    ("64:ff9b::8.8.8.8", None),
    # NAT64, local-use prefix 64:ff9b:1::/48: the IPv4 address sits where the operator chose
    ("64:ff9b:1::a9fe:a9fe", "local-use NAT64"),
    ("64:ff9b:1:a9fe:a9:fe00::", "local-use NAT64"),
    ("64:ff9b:1::808:808", "local-use NAT64"),
    # site-local fec0::/10: the deprecated private range
    ("fec0::1", "private address"),
    ("feff:ffff::1", "private address"),
    # 6to4 2002:AABB:CCDD::/48
    ("2002:7f00:1::1", "embeds 127.0.0.1, which is a loopback"),
    ("2002:a9fe:a9fe::", "embeds 169.254.169.254, which is a cloud metadata"),
    ("2002:a01:203::1", "embeds 10.1.2.3, which is a private"),
    ("2002:808:808::1", None),
    # Teredo 2001:0:server:flags:port:~client
    ("2001:0:4136:e378:8000:63bf:80ff:fffe", "embeds 127.0.0.1"),                     # client 127.0.0.1
    ("2001:0:a9fe:a9fe:8000:63bf:3fff:fdd2", "embeds 169.254.169.254"),               # server metadata
    ("2001:0:4136:e378:8000:63bf:5601:fefe", "embeds 169.254.1.1, which is link-local"),  # client
    ("2001:0:4136:e378:8000:63bf:f5fe:fdfc", "embeds 10.1.2.3, which is a private"),  # client private
    ("2001:0:4136:e378:8000:63bf:f7f7:f7f7", "Teredo tunnel address"),                # public both
    # other IPv6
    ("::1", "loopback"),
    ("::", "unspecified"),
    ("fe80::1%eth0", "link-local"),
    ("fd00:ec2::254", "cloud metadata"),
    ("fd12::1", "private address"),
    ("ff02::1", "multicast"),
    ("2001:db8::1", "not a public address"),
    ("2606:4700:4700::1111", None),
]


@pytest.mark.parametrize(("address", "words"), TABLE, ids=[a for a, _ in TABLE])
def test_attack_ipv6_spellings_of_forbidden_addresses_are_refused(address: str, words: str | None) -> None:
    reason = STRICT.refusal(address)
    if words is None:
        assert reason is None
    else:
        assert reason is not None and words in reason, reason


@pytest.mark.parametrize("address", [
    "::ffff:169.254.169.254", "::169.254.169.254", "64:ff9b::169.254.169.254", "2002:a9fe:a9fe::1",
    "2001:0:a9fe:a9fe:8000:63bf:3fff:fdd2", "::ffff:0:169.254.169.254", "64:ff9b:1::a9fe:a9fe",
    "::127.0.0.1", "64:ff9b::127.0.0.1", "2002:7f00:1::1",
])
def test_opting_in_to_private_networks_never_opens_metadata_or_loopback(address: str) -> None:
    assert PRIVATE_OK.refusal(address) is not None


@pytest.mark.parametrize(("address", "allowed"), [
    ("64:ff9b::10.1.2.3", True), ("::ffff:10.1.2.3", True), ("2002:a01:203::1", True), ("fec0::1", True),
    ("::10.1.2.3", False),          # deprecated forms stay refused even with the opt-in
])
def test_private_spellings_follow_the_opt_in(address: str, allowed: bool) -> None:
    assert (PRIVATE_OK.refusal(address) is None) is allowed
    assert STRICT.refusal(address) is not None


@pytest.mark.parametrize(("address", "allowed"), [
    ("127.0.0.1", True), ("::1", True), ("::ffff:127.0.0.1", True),
    ("::127.0.0.1", False), ("64:ff9b::127.0.0.1", False), ("2002:7f00:1::1", False),
    ("169.254.169.254", False),
])
def test_development_loopback_allows_only_spellings_that_reach_this_host(address: str,
                                                                         allowed: bool) -> None:
    """A NAT64 or 6to4 form of 127.0.0.1 goes to a translator, not here: refused even in development."""
    assert (DEV.refusal(address) is None) is allowed
