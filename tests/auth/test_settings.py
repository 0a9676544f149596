"""Building the Authenticator from the gateway's settings: no network and no event loop needed."""

from __future__ import annotations

from shared.auth.authenticator import Authenticator
from shared.auth.fetch import HttpFetcher
from shared.settings import load


def test_from_settings_defaults() -> None:
    auth = Authenticator.from_settings(load({}))
    assert auth.leeway == 60
    assert (auth.policy.ttl, auth.policy.max_stale, auth.policy.cooldown) == (600.0, 86400.0, 30.0)
    assert isinstance(auth._fetcher, HttpFetcher) and auth._fetcher.allow_http_loopback is False


def test_from_settings_values_and_overrides() -> None:
    settings = load({"GATEWAY_JWT_LEEWAY_SECONDS": "5", "GATEWAY_JWKS_TTL_SECONDS": "300",
                     "GATEWAY_JWKS_MAX_STALE_SECONDS": "3600", "GATEWAY_JWKS_COOLDOWN_SECONDS": "10",
                     "GATEWAY_DEV_ALLOW_HTTP_LOOPBACK": "true"})
    auth = Authenticator.from_settings(settings, token_cache_size=16)
    assert auth.leeway == 5
    assert (auth.policy.ttl, auth.policy.max_stale, auth.policy.cooldown) == (300.0, 3600.0, 10.0)
    assert isinstance(auth._fetcher, HttpFetcher) and auth._fetcher.allow_http_loopback is True
    assert auth.tokens.max_entries == 16
