"""The verified-token cache: a repeated token costs microseconds, and the cache never outlives the token's
expiry, its key, or the configuration that accepted it."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from sandbox.idp import DevIdentityProvider
from shared.auth.authenticator import Authenticator
from shared.auth.signature import EC_CURVES
from shared.auth.trace import Trace
from shared.config.model import ExternalIdentity, frozen_mapping
from shared.errors import InvalidToken
from tests.auth.conftest import AUDIENCE, Clock, config, provider
from tests.auth.craft import b64, jws, split, unb64


async def test_a_repeated_token_is_not_verified_again(dev_idp: DevIdentityProvider,
                                                      make_auth: Callable[..., Authenticator]) -> None:
    """Hits are answered from the cache (its cost is measured by `make bench`, not here)."""
    auth = make_auth(wall_clock=time.time, monotonic_clock=time.monotonic)
    cfg = config(provider(dev_idp))
    tokens = [dev_idp.mint(f"u{i}", audience=AUDIENCE) for i in range(200)]
    first = [await auth.authenticate(token, cfg) for token in tokens]
    assert auth.tokens.hits == 0 and len(auth.tokens) == 200
    for _ in range(5):
        assert [await auth.authenticate(token, cfg) for token in tokens] == first
    assert auth.tokens.hits == 1000


async def test_expiry(dev_idp: DevIdentityProvider, clock: Clock, auth: Authenticator) -> None:
    cfg = config(provider(dev_idp))
    token = dev_idp.mint("alice", audience=AUDIENCE, expires_in=100)
    await auth.authenticate(token, cfg)
    clock.advance(100 + 59)                 # within the 60 s leeway
    assert (await auth.authenticate(token, cfg)).unique_id == "alice"
    clock.advance(1)
    with pytest.raises(InvalidToken, match="token expired"):
        await auth.authenticate(token, cfg)
    assert len(auth.tokens) == 0


async def test_configuration_changes_are_honoured(dev_idp: DevIdentityProvider, auth: Authenticator) -> None:
    token = dev_idp.mint("alice", audience=AUDIENCE, claims={"groups": ["developers"]})
    devs = (ExternalIdentity("developers", "dev", frozen_mapping({"groups": "developers"})),)
    first = await auth.authenticate(token, config(provider(dev_idp), identities=devs))
    assert first.identities == frozenset({"developers"})
    renamed = (ExternalIdentity("builders", "dev", frozen_mapping({"groups": "developers"})),)
    assert (await auth.authenticate(token, config(provider(dev_idp), identities=renamed))).identities == \
        frozenset({"builders"})
    with pytest.raises(InvalidToken, match="audience mismatch"):
        await auth.authenticate(token, config(provider(dev_idp, audiences=("api://other",))))
    with pytest.raises(InvalidToken, match="unknown issuer"):
        await auth.authenticate(token, config())
    assert dev_idp.fetch_count == 1


async def test_bounded(dev_idp: DevIdentityProvider, make_auth: Callable[..., Authenticator]) -> None:
    auth = make_auth(token_cache_size=10)
    cfg = config(provider(dev_idp))
    for i in range(50):
        await auth.authenticate(dev_idp.mint(f"u{i}", audience=AUDIENCE), cfg)
    assert len(auth.tokens) == 10


async def test_refusals_are_not_cached_and_trace_bypasses_the_cache(dev_idp: DevIdentityProvider,
                                                                    auth: Authenticator) -> None:
    cfg = config(provider(dev_idp))
    with pytest.raises(InvalidToken):
        await auth.authenticate(dev_idp.mint("alice", audience="api://other"), cfg)
    assert len(auth.tokens) == 0
    token = dev_idp.mint("alice", audience=AUDIENCE)
    await auth.authenticate(token, cfg)
    trace = Trace()
    await auth.authenticate(token, cfg, trace=trace)
    assert [c.name for c in trace.checks][-2:] == ["signature", "identities"]


async def test_malleable_ecdsa_is_only_another_miss(dev_idp: DevIdentityProvider,
                                                     auth: Authenticator) -> None:
    """(r, n - s) is another valid ES256 signature of the same token: a second string, a second entry.
    Harmless for a positive cache; this is why nothing may deny-list or replay-check raw token strings."""
    key = ec.generate_private_key(ec.SECP256R1())
    kid = dev_idp.add_private_key(key, "ES256", "es")
    token = jws({"alg": "ES256", "kid": kid}, {"iss": dev_idp.issuer, "sub": "alice", "aud": AUDIENCE,
                                               "exp": int(time.time()) + 600}, key=key)
    head, body, sig = split(token)
    raw = unb64(sig)
    n = EC_CURVES["ES256"][2]
    twin = f"{head}.{body}.{b64(raw[:32] + (n - int.from_bytes(raw[32:], 'big')).to_bytes(32, 'big'))}"
    cfg = config(provider(dev_idp))
    assert twin != token
    assert (await auth.authenticate(token, cfg)).user == (await auth.authenticate(twin, cfg)).user
    assert len(auth.tokens) == 2
