"""The key cache against a real JWKS server on loopback that misbehaves: outages, garbage, floods of
unknown key ids, huge and slow answers, redirects, rotation. Time is injected (no sleeping), except
where the point is a real deadline."""

from __future__ import annotations

import asyncio
import random
import string
import time
from collections.abc import Callable

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from sandbox.idp import DevIdentityProvider
from shared.auth.authenticator import Authenticator
from shared.auth.fetch import DEADLINE_SECONDS, MAX_BODY_BYTES, HttpFetcher
from shared.errors import InvalidToken
from tests.auth.conftest import AUDIENCE, Clock, config, provider
from tests.auth.craft import jws

pytestmark = pytest.mark.integration


class TimedFetcher(HttpFetcher):
    """The real fetcher, noting the (injected) monotonic time of every GET."""

    def __init__(self, clock: Clock, **options: object) -> None:
        super().__init__(allow_http_loopback=True, **options)  # type: ignore[arg-type]
        self.clock = clock
        self.times: list[float] = []

    async def get(self, url: str, *, allow_private_network: bool) -> bytes:
        self.times.append(self.clock.mono())
        return await super().get(url, allow_private_network=allow_private_network)


async def refused(auth: Authenticator, token: str, cfg: object) -> str:
    with pytest.raises(InvalidToken) as info:
        await auth.authenticate(token, cfg)  # type: ignore[arg-type]
    return info.value.reason


def test_defaults_are_the_good_target() -> None:
    assert MAX_BODY_BYTES == 1024 * 1024
    assert DEADLINE_SECONDS == 5.0
    auth = Authenticator()  # no event loop, no network
    assert (auth.policy.ttl, auth.policy.max_stale, auth.policy.cooldown, auth.policy.deadline) == (
        600.0, 86400.0, 30.0, 5.0)


async def test_provider_down_longer_than_ttl(dev_idp: DevIdentityProvider, clock: Clock,
                                             make_auth: Callable[..., Authenticator]) -> None:
    auth = make_auth()
    cfg = config(provider(dev_idp))
    await auth.authenticate(dev_idp.mint("alice", audience=AUDIENCE, expires_in=200_000), cfg)
    assert dev_idp.fetch_count == 1

    dev_idp.fault = "down"
    clock.advance(700)                      # past the 600 s TTL
    known = dev_idp.mint("bob", audience=AUDIENCE, expires_in=200_000)
    assert (await auth.authenticate(known, cfg)).unique_id == "bob"   # stale keys still served
    await auth.quiesce()                    # the background refresh it started
    assert dev_idp.fetch_count == 2
    status = auth.key_status(cfg)["dev"]
    assert status is not None and status.stale and status.usable and status.last_error == "HTTP 503"

    new_kid = dev_idp.add_key("ES256")
    reason = await refused(auth, dev_idp.mint("carol", kid=new_kid, audience=AUDIENCE), cfg)
    assert f"unknown key id {new_kid!r} for identity provider 'dev': its signing keys are unavailable" \
        in reason
    assert "HTTP 503" in reason
    assert dev_idp.fetch_count == 2         # within the cooldown of the failed refresh: no new fetch
    clock.advance(31)
    reason = await refused(auth, dev_idp.mint("carol", kid=new_kid, audience=AUDIENCE), cfg)
    assert "signing keys are unavailable" in reason
    assert dev_idp.fetch_count == 3         # one refetch, which failed

    clock.advance(86_400)                   # past TTL + max-stale: even known keys are gone
    reason = await refused(auth, dev_idp.mint("dave", audience=AUDIENCE, expires_in=200_000), cfg)
    assert "signing keys of identity provider 'dev' are unavailable" in reason
    assert "past the max-stale limit" in reason

    dev_idp.fault = None                    # the provider recovers
    clock.advance(60)                       # past the failure backoff
    recovered = dev_idp.mint("erin", kid=new_kid, audience=AUDIENCE, expires_in=200_000)
    assert (await auth.authenticate(recovered, cfg)).unique_id == "erin"


@pytest.mark.parametrize(("fault", "error"), [
    ("html", "JWKS is not valid JSON"),
    ("empty", "JWKS has no keys"),
    ("garbage-keys", "JWKS has no usable signing keys (5 refused"),
    ("down", "HTTP 503"),
    ("redirect", "redirect (HTTP 302) refused"),
    ("huge", "answer is over the 1 MB limit"),
])
async def test_bad_answers_never_replace_good_keys(fault: str, error: str, dev_idp: DevIdentityProvider,
                                                   auth: Authenticator) -> None:
    cfg = config(provider(dev_idp))
    assert await auth.refresh_all(cfg) == {"dev": None}
    dev_idp.fault = fault
    started = time.monotonic()
    errors = await auth.refresh_all(cfg)
    assert error in (errors["dev"] or ""), errors
    assert time.monotonic() - started < 3
    token = dev_idp.mint("alice", audience=AUDIENCE)
    assert (await auth.authenticate(token, cfg)).unique_id == "alice"   # last-known-good keys
    status = auth.key_status(cfg)["dev"]
    assert status is not None and status.kids == (dev_idp.default_kid,) and status.last_error == errors["dev"]
    assert dev_idp.redirect_target_hits == 0


@pytest.mark.parametrize(("fault", "error"), [
    ("html", "JWKS is not valid JSON"),
    ("empty", "JWKS has no keys"),
    ("garbage-keys", "JWKS has no usable signing keys"),
    ("redirect", "redirect (HTTP 302) refused"),
    ("huge", "answer is over the 1 MB limit"),
])
async def test_bad_answers_without_good_keys_refuse_with_the_reason(
        fault: str, error: str, dev_idp: DevIdentityProvider, auth: Authenticator) -> None:
    dev_idp.fault = fault
    reason = await refused(auth, dev_idp.mint("alice", audience=AUDIENCE), config(provider(dev_idp)))
    assert reason.startswith("signing keys of identity provider 'dev' are unavailable: ")
    assert error in reason
    assert dev_idp.redirect_target_hits == 0


async def test_trickle_ends_at_the_default_deadline(dev_idp: DevIdentityProvider,
                                                     make_auth: Callable[..., Authenticator]) -> None:
    """1 byte every 0.5 s: a per-read timeout would wait forever; the total deadline ends it at 5 s."""
    auth = make_auth(wall_clock=time.time, monotonic_clock=time.monotonic)
    dev_idp.fault = "trickle"
    started = time.monotonic()
    reason = await refused(auth, dev_idp.mint("alice", audience=AUDIENCE), config(provider(dev_idp)))
    elapsed = time.monotonic() - started
    assert "no complete answer within 5 s" in reason
    assert 4.5 < elapsed < 6.5


async def test_huge_body_is_cut_at_the_cap(dev_idp: DevIdentityProvider, clock: Clock) -> None:
    fetcher = HttpFetcher(allow_http_loopback=True)
    try:
        dev_idp.fault = "huge"
        started = time.monotonic()
        with pytest.raises(Exception, match="over the 1 MB limit"):
            await fetcher.get(dev_idp.jwks_uri, allow_private_network=False)
        assert time.monotonic() - started < 2
        dev_idp.fault = None
        small = HttpFetcher(allow_http_loopback=True, max_bytes=100)
        with pytest.raises(Exception, match=r"answer of \d+ bytes is over the 100 bytes limit"):
            await small.get(dev_idp.jwks_uri, allow_private_network=False)   # declared length, unread
        await small.aclose()
    finally:
        await fetcher.aclose()


async def test_rotation(dev_idp: DevIdentityProvider, clock: Clock, auth: Authenticator) -> None:
    cfg = config(provider(dev_idp))
    old_kid = dev_idp.default_kid
    old_token = dev_idp.mint("alice", audience=AUDIENCE)
    await auth.authenticate(old_token, cfg)
    assert dev_idp.fetch_count == 1

    new_kid = dev_idp.add_key("RS256")
    clock.advance(5)                        # inside the 30 s cooldown of the first fetch
    reason = await refused(auth, dev_idp.mint("bob", kid=new_kid, audience=AUDIENCE), cfg)
    assert reason == f"unknown key id {new_kid!r} for identity provider 'dev'"
    assert dev_idp.fetch_count == 1
    clock.advance(30)
    rotated = dev_idp.mint("bob", kid=new_kid, audience=AUDIENCE)
    assert (await auth.authenticate(rotated, cfg)).unique_id == "bob"
    assert dev_idp.fetch_count == 2         # accepted after exactly one refresh

    signed_before_removal = dev_idp.mint("carol", kid=old_kid, audience=AUDIENCE)
    dev_idp.remove_key(old_kid)
    assert await auth.refresh_all(cfg) == {"dev": None}
    assert dev_idp.fetch_count == 3
    reason = await refused(auth, signed_before_removal, cfg)
    assert reason == f"unknown key id {old_kid!r} for identity provider 'dev'"
    reason = await refused(auth, old_token, cfg)   # verified before, cached: the cache lets go too
    assert reason == f"unknown key id {old_kid!r} for identity provider 'dev'"
    assert dev_idp.fetch_count == 3         # both inside the cooldown of the refresh


async def test_rotation_by_ttl_refresh_in_the_background(dev_idp: DevIdentityProvider, clock: Clock,
                                                         auth: Authenticator) -> None:
    cfg = config(provider(dev_idp))
    await auth.authenticate(dev_idp.mint("alice", audience=AUDIENCE), cfg)
    new_kid = dev_idp.add_key("ES384")
    clock.advance(545)                      # 0.9 TTL: the next request starts a background refresh
    token = dev_idp.mint("bob", audience=AUDIENCE)
    assert (await auth.authenticate(token, cfg)).unique_id == "bob"
    await auth.quiesce()
    assert dev_idp.fetch_count == 2
    status = auth.key_status(cfg)["dev"]
    assert status is not None and new_kid in status.kids and not status.stale


async def test_a_thousand_random_kids_in_ten_seconds(dev_idp: DevIdentityProvider, clock: Clock,
                                                     make_auth: Callable[..., Authenticator]) -> None:
    """At most one fetch per cooldown, counted; valid traffic all accepted meanwhile."""
    cooldown = 3.0
    fetcher = TimedFetcher(clock)
    auth = make_auth(fetcher=fetcher, jwks_cooldown_seconds=cooldown)
    cfg = config(provider(dev_idp))
    attacker = ec.generate_private_key(ec.SECP256R1())
    rng = random.Random(7)
    now = int(clock.wall())
    claims = {"iss": dev_idp.issuer, "sub": "mallory", "aud": AUDIENCE, "exp": now + 600}
    accepted = refused_count = 0
    for i in range(1000):
        kid = "".join(rng.choices(string.ascii_letters, k=12))
        hostile = jws({"alg": "ES256", "kid": kid}, claims, key=attacker)
        batch = [auth.authenticate(hostile, cfg)]
        if i % 10 == 0:                     # one valid request for every ten hostile ones
            batch.append(auth.authenticate(dev_idp.mint(f"user{i}", audience=AUDIENCE), cfg))
        for result in await asyncio.gather(*batch, return_exceptions=True):
            if isinstance(result, InvalidToken):
                assert "unknown key id" in result.reason
                refused_count += 1
            else:
                assert not isinstance(result, BaseException), result
                accepted += 1
        clock.advance(0.01)                 # 1,000 requests over 10 s
    assert (accepted, refused_count) == (100, 1000)
    gaps = [b - a for a, b in zip(fetcher.times, fetcher.times[1:], strict=False)]
    assert all(gap >= cooldown for gap in gaps), gaps
    assert len(fetcher.times) <= 1 + int(10 / cooldown)   # the first fetch, then one per cooldown
    assert dev_idp.fetch_count == len(fetcher.times)


async def test_concurrent_unknown_kids_share_one_fetch(dev_idp: DevIdentityProvider, clock: Clock,
                                                       auth: Authenticator) -> None:
    cfg = config(provider(dev_idp))
    tokens = [dev_idp.mint(f"u{i}", audience=AUDIENCE) for i in range(50)]
    await asyncio.gather(*(auth.authenticate(t, cfg) for t in tokens))   # cold cache: one fetch
    assert dev_idp.fetch_count == 1
    clock.advance(31)
    attacker = ec.generate_private_key(ec.SECP256R1())
    claims = {"iss": dev_idp.issuer, "sub": "m", "aud": AUDIENCE, "exp": int(clock.wall()) + 600}
    burst = [jws({"alg": "ES256", "kid": f"k{i}"}, claims, key=attacker) for i in range(1000)]
    results = await asyncio.gather(*(auth.authenticate(t, cfg) for t in burst), return_exceptions=True)
    assert all(isinstance(r, InvalidToken) for r in results)
    assert dev_idp.fetch_count == 2         # 1,000 unknown kids at once: one shared refetch


async def test_no_lock_across_network_io(dev_idp: DevIdentityProvider, clock: Clock,
                                         make_auth: Callable[..., Authenticator]) -> None:
    """While an unknown-kid refetch hangs on a slow provider, known-kid requests are not held up."""
    auth = make_auth(fetcher=HttpFetcher(allow_http_loopback=True, deadline_seconds=2.0))
    cfg = config(provider(dev_idp))
    await auth.authenticate(dev_idp.mint("alice", audience=AUDIENCE), cfg)
    clock.advance(31)
    dev_idp.fault = "trickle"
    unknown = dev_idp.mint("x", audience=AUDIENCE, kid=dev_idp.add_key("ES256"))
    slow = asyncio.create_task(auth.authenticate(unknown, cfg))
    await asyncio.sleep(0.2)
    assert not slow.done()                  # waiting on the shared refetch
    started = time.monotonic()
    fresh = dev_idp.mint("bob", audience=AUDIENCE)
    assert (await asyncio.wait_for(auth.authenticate(fresh, cfg), 0.5)).unique_id == "bob"
    assert time.monotonic() - started < 0.5
    with pytest.raises(InvalidToken, match="no complete answer within 2 s"):
        await slow


async def test_a_cancelled_request_does_not_cancel_the_shared_fetch(
        dev_idp: DevIdentityProvider, auth: Authenticator) -> None:
    cfg = config(provider(dev_idp))
    first = asyncio.create_task(auth.authenticate(dev_idp.mint("a", audience=AUDIENCE), cfg))
    second = asyncio.create_task(auth.authenticate(dev_idp.mint("b", audience=AUDIENCE), cfg))
    await asyncio.sleep(0)
    first.cancel()
    assert (await second).unique_id == "b"
    assert dev_idp.fetch_count == 1


async def test_failures_back_off(dev_idp: DevIdentityProvider, clock: Clock, auth: Authenticator) -> None:
    """With no keys at all, a down provider is retried after 1 s, then 2 s, 4 s ... up to the cooldown,
    however many requests arrive."""
    cfg = config(provider(dev_idp))
    dev_idp.fault = "down"
    token = dev_idp.mint("alice", audience=AUDIENCE)
    for _ in range(20):
        assert "HTTP 503" in await refused(auth, token, cfg)
    assert dev_idp.fetch_count == 1
    clock.advance(1)
    await refused(auth, token, cfg)
    assert dev_idp.fetch_count == 2
    clock.advance(1)
    await refused(auth, token, cfg)
    assert dev_idp.fetch_count == 2         # now 2 s
    clock.advance(1)
    await refused(auth, token, cfg)
    assert dev_idp.fetch_count == 3
    dev_idp.fault = None
    clock.advance(4)
    assert (await auth.authenticate(token, cfg)).unique_id == "alice"
    assert dev_idp.fetch_count == 4


async def test_configuration_change_takes_effect(start_idp: Callable[..., DevIdentityProvider],
                                                 auth: Authenticator) -> None:
    """Keys are cached per provider name AND source: repointing `dev` fetches the new source at once."""
    first, second = start_idp(), start_idp(fresh_key=True)
    await auth.authenticate(first.mint("alice", audience=AUDIENCE), config(provider(first, "dev")))
    moved = config(provider(second, "dev"))
    assert (await auth.authenticate(second.mint("bob", audience=AUDIENCE), moved)).user == "user:dev/bob"
    assert (first.fetch_count, second.fetch_count) == (1, 1)
    reason = await refused(auth, first.mint("alice", audience=AUDIENCE), moved)
    assert "unknown issuer" in reason
