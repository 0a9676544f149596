"""An identity provider's sign-in endpoints (authorization and token), read from its OpenID configuration
and kept for a few minutes.

The console's sign-in buttons are served to anyone, so each provider's document is fetched at most once
per `FRESH_SECONDS` (a failure is remembered for `RETRY_SECONDS`), never once per page load; concurrent
misses may fetch twice rather than wait on a lock held across the network. The document must name the
configured issuer exactly, as for keys, so a document served for someone else cannot send the browser
or the code elsewhere. Fetches use the gateway's hardened fetcher and address policy.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from ..auth import discovery
from ..auth.discovery import discovery_url
from ..auth.fetch import Fetcher, FetchError, HttpFetcher
from ..config.model import IdentityProvider

FRESH_SECONDS = 300.0
RETRY_SECONDS = 30.0
MAX_URL = 2048


class EndpointsError(ValueError):
    """The provider's sign-in endpoints cannot be read; the message says why (for the log)."""


@dataclass(frozen=True, slots=True)
class Endpoints:
    authorization: str
    token: str


@dataclass(frozen=True, slots=True)
class _Entry:
    source: tuple[str, bool]        # the issuer and address policy it was read under
    endpoints: Endpoints | None
    error: str | None
    until: float


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def _endpoint(doc: dict[str, Any], member: str, allow_http_loopback: bool) -> str:
    value = doc.get(member)
    if not isinstance(value, str) or not 0 < len(value) <= MAX_URL or any(c.isspace() for c in value):
        raise EndpointsError(f"the OpenID configuration has no usable {member}")
    parts = urlsplit(value)
    plain_ok = parts.scheme == "http" and allow_http_loopback and _is_loopback(parts.hostname or "")
    if not (parts.scheme == "https" or plain_ok) or not parts.hostname or parts.username or parts.fragment:
        raise EndpointsError(f"the OpenID configuration's {member} is not an https URL")
    return value


def endpoints_from(raw: bytes, issuer: str, *, allow_http_loopback: bool) -> Endpoints:
    try:
        doc = discovery.document(raw, issuer)
    except discovery.DiscoveryError as exc:
        raise EndpointsError(str(exc)) from None
    methods = doc.get("code_challenge_methods_supported")
    if isinstance(methods, list) and "S256" not in methods:
        raise EndpointsError("the provider does not support PKCE with S256")
    return Endpoints(_endpoint(doc, "authorization_endpoint", allow_http_loopback),
                     _endpoint(doc, "token_endpoint", allow_http_loopback))


class EndpointCache:
    """Provider name -> its endpoints, or why not, for a few minutes."""

    def __init__(self, *, allow_http_loopback: bool, clock: Callable[[], float] = time.monotonic,
                 fetcher: Callable[[], Fetcher] | None = None) -> None:
        self.allow_http_loopback = allow_http_loopback
        self._clock = clock
        self._fetcher = fetcher or (lambda: HttpFetcher(allow_http_loopback=allow_http_loopback))
        self._entries: dict[str, _Entry] = {}

    async def of(self, provider: IdentityProvider) -> Endpoints:
        """The provider's endpoints, or EndpointsError."""
        if not provider.issuer:
            raise EndpointsError("the provider has no issuer to read an OpenID configuration from")
        source = (provider.issuer, provider.allow_private_network)
        entry = self._entries.get(provider.name)
        now = self._clock()
        if entry is None or entry.source != source or entry.until <= now:
            entry = await self._read(provider, source)
            self._entries[provider.name] = entry
        if entry.endpoints is None:
            raise EndpointsError(entry.error or "unknown")
        return entry.endpoints

    async def _read(self, provider: IdentityProvider, source: tuple[str, bool]) -> _Entry:
        fetcher = self._fetcher()
        try:
            raw = await fetcher.get(discovery_url(source[0]), allow_private_network=source[1])
            found = endpoints_from(raw, source[0], allow_http_loopback=self.allow_http_loopback)
            return _Entry(source, found, None, self._clock() + FRESH_SECONDS)
        except (FetchError, EndpointsError) as exc:
            return _Entry(source, None, f"OpenID configuration: {exc}", self._clock() + RETRY_SECONDS)
        finally:
            await fetcher.aclose()

    def forget(self, names: set[str]) -> None:
        """Drop the entries of providers no longer configured for console sign-in."""
        for name in set(self._entries) - names:
            del self._entries[name]
