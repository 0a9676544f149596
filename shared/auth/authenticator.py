"""The composition root of caller authentication, and the only entry point of the request path.

    authenticate(token, config) -> Principal     (or InvalidToken with the failed check as reason)
    refresh_all(config)         -> {provider: error or None}   (the timer)

Owns the verified-token cache and the per-provider key cache. Constructed without I/O or an event loop;
the HTTP session is created lazily inside the running loop on the first fetch. Logs carry the
issuer, key id, algorithm and a SHA-256 fingerprint of a token, never the token itself.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from ..config.model import Config, IdentityProvider
from ..errors import InvalidToken
from .fetch import Fetcher, HttpFetcher
from .graph import GroupDirectory
from .identities import Principal, match_identities
from .jwks import CachePolicy, KeyCache, KeyStatus, SavedKeys, Seeder
from .overage import is_overage, unknown_conditions, with_groups
from .redact import digest, fingerprint, show
from .token_cache import DEFAULT_MAX_ENTRIES, CachedToken, VerifiedTokenCache
from .trace import Context, Refused, Trace
from .verifier import Verifier

if TYPE_CHECKING:
    from ..settings import Settings

log = logging.getLogger("gateway.auth.authenticator")


class Authenticator:
    def __init__(self, *, leeway_seconds: int = 60, jwks_ttl_seconds: float = 600.0,
                 jwks_max_stale_seconds: float = 86400.0, jwks_cooldown_seconds: float = 30.0,
                 allow_http_loopback: bool = False, wall_clock: Callable[[], float] = time.time,
                 monotonic_clock: Callable[[], float] = time.monotonic, fetcher: Fetcher | None = None,
                 token_cache_size: int = DEFAULT_MAX_ENTRIES, jwks_deadline_seconds: float = 5.0,
                 jwks_retry_seconds: float = 1.0, load_saved_keys: Seeder | None = None,
                 groups: GroupDirectory | None = None) -> None:
        """`allow_http_loopback` configures the default fetcher; an injected `fetcher` has its own.
        `load_saved_keys` reads the last-known-good keys the timer stored (one read per process).
        `groups` reads an Entra user's groups from Graph for providers with groups_from_graph."""
        self.leeway = leeway_seconds
        self._wall = wall_clock
        self._fetcher: Fetcher = fetcher or HttpFetcher(allow_http_loopback=allow_http_loopback)
        self.policy = CachePolicy(ttl=jwks_ttl_seconds, max_stale=jwks_max_stale_seconds,
                                  cooldown=jwks_cooldown_seconds, retry=jwks_retry_seconds,
                                  deadline=jwks_deadline_seconds)
        self.keys = KeyCache(fetcher=self._fetcher, policy=self.policy, monotonic=monotonic_clock,
                             wall=wall_clock, load_saved=load_saved_keys)
        self.tokens = VerifiedTokenCache(token_cache_size)
        self._verifier = Verifier(keys=self.keys, leeway=leeway_seconds, wall=wall_clock)
        self._providers: tuple[IdentityProvider, ...] | None = None
        self._groups = groups

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> Authenticator:
        options: dict[str, Any] = {
            "leeway_seconds": settings.jwt_leeway_seconds,
            "jwks_ttl_seconds": settings.jwks_ttl_seconds,
            "jwks_max_stale_seconds": settings.jwks_max_stale_seconds,
            "jwks_cooldown_seconds": settings.jwks_cooldown_seconds,
            "allow_http_loopback": settings.allow_http_loopback,
        }
        options.update(overrides)
        return cls(**options)

    # -- the request path -------------------------------------------------------------------------

    async def authenticate(self, token: str, config: Config, *, trace: Trace | None = None) -> Principal:
        """The caller's principal, or `InvalidToken`. With a `trace`, every check is recorded and the
        verified-token cache is not read (explain must show the real checks)."""
        token_digest = digest(token)
        self._observe(config)
        if trace is None:
            cached = self.tokens.get(token_digest)
            if cached is not None:
                principal = self._from_cache(token_digest, cached, config)
                if principal is not None:
                    return principal
        context = Context()
        try:
            verified = await self._verifier.verify(token, config.identity_providers, context, trace)
        except Refused as refused:
            log.info("token refused: %s check=%s provider=%s iss=%s kid=%s alg=%s fp=%s", refused.reason,
                     refused.check, context.provider or "-", show(context.iss), show(context.kid),
                     show(context.alg), fingerprint(token_digest))
            raise InvalidToken(refused.reason, refused.check, refused.public) from None
        except Exception as exc:  # fail closed; the message of an unexpected error is not trusted
            log.error("token verification failed unexpectedly: %s fp=%s", type(exc).__name__,
                      fingerprint(token_digest))
            raise InvalidToken("token could not be verified (internal error)") from None
        provider = verified.provider
        claims, problem = await self._with_groups(provider, verified.claims, verified.exp, trace)
        identities = match_identities(provider.name, claims, config.external_identities)
        principal = Principal(provider=provider.name, unique_id=verified.unique_id, email=verified.email,
                              identities=identities)
        if trace is not None:   # explain only: a request needs no account of what could not be decided
            trace.passed("identities", ", ".join(sorted(identities)) or "no external identity matches")
            for condition in unknown_conditions(provider.name, claims, config.external_identities,
                                                looked_up=problem):
                trace.failed("groups", condition.why)
        if problem is None:     # an unanswered Graph lookup is asked again, not held for the token's life
            self.tokens.put(token_digest, CachedToken(
                provider=provider, source=verified.source, kid=verified.key.kid,
                thumbprint=verified.key.thumbprint, exp=verified.exp, claims=claims, principal=principal,
                providers=config.identity_providers, external_identities=config.external_identities))
        log.debug("token accepted provider=%s iss=%s kid=%s alg=%s fp=%s", provider.name,
                  show(context.iss), show(context.kid), show(context.alg), fingerprint(token_digest))
        return principal

    async def _with_groups(self, provider: IdentityProvider, claims: Mapping[str, Any], exp: int,
                           trace: Trace | None) -> tuple[Mapping[str, Any], str | None]:
        """The claims with the groups Graph returned, when the token left them out and the provider
        asks for it; else as they are. The second value: why Graph gave no answer, when asked."""
        if not (provider.groups_from_graph and self._groups is not None and is_overage(claims)):
            return claims, None
        answer = await self._groups.lookup(provider.name, claims, exp)
        if answer.ids is None:
            return claims, answer.problem or "no answer"
        if trace is not None:
            trace.passed("groups", f"the token left its groups out; {len(answer.ids)} read from "
                                   "Microsoft Graph")
        return with_groups(claims, answer.ids), None

    def _from_cache(self, token_digest: bytes, cached: CachedToken, config: Config) -> Principal | None:
        """The cached principal if the token is still unexpired, the providers unchanged and its key
        still held; else None (and the entry is dropped, so the token is verified again)."""
        providers = config.identity_providers
        if (self._wall() >= cached.exp + self.leeway
                or (cached.providers is not providers and cached.providers != providers)):
            self.tokens.discard(token_digest)
            return None
        if not cached.source.holds(cached.kid, cached.thumbprint):
            self.tokens.discard(token_digest)
            return None
        identities = config.external_identities
        if cached.providers is providers and cached.external_identities is identities:
            return cached.principal
        principal = cached.principal
        if cached.external_identities != identities:
            principal = Principal(provider=principal.provider, unique_id=principal.unique_id,
                                  email=principal.email,
                                  identities=match_identities(principal.provider, cached.claims, identities))
        self.tokens.put(token_digest, CachedToken(
            provider=cached.provider, source=cached.source, kid=cached.kid, thumbprint=cached.thumbprint,
            exp=cached.exp, claims=cached.claims, principal=principal, providers=providers,
            external_identities=identities))
        return principal

    def _observe(self, config: Config) -> None:
        """Forget key sources of providers the configuration no longer has (once per config change)."""
        if config.identity_providers is not self._providers:
            self._providers = config.identity_providers
            self.keys.prune(config.identity_providers)

    # -- the timer and status ---------------------------------------------------------------------

    async def refresh_all(self, config: Config) -> dict[str, str | None]:
        """Refresh every provider's keys now; provider name -> error text, or None when refreshed."""
        self._observe(config)
        providers = config.identity_providers
        errors = await asyncio.gather(*(self.keys.source(p).refresh() for p in providers))
        return {p.name: error for p, error in zip(providers, errors, strict=True)}

    async def warm(self, config: Config) -> None:
        """What a cold start does before its first request: stored keys first, the provider for the rest."""
        self._observe(config)
        sources = [self.keys.source(p) for p in config.identity_providers]
        await asyncio.gather(*(s.seed() for s in sources))
        await asyncio.gather(*(s.refresh() for s in sources if s.fetched is None))

    def refresh_due(self, config: Config) -> None:
        """Start background refreshes of key sets near their TTL (no waiting, no fetch otherwise)."""
        now = self.keys.now()
        for p in config.identity_providers:
            source = self.keys.peek(p)
            if source is not None:
                source.maybe_background(now)

    def saved_keys(self, config: Config) -> list[SavedKeys]:
        """Keys fetched from each provider by this process, for the timer to store."""
        sources = (self.keys.peek(p) for p in config.identity_providers)
        return [saved for s in sources if s is not None and (saved := s.saved()) is not None]

    def key_status(self, config: Config) -> dict[str, KeyStatus | None]:
        """Per provider: the keys held, their age, the last error (None: never fetched)."""
        result: dict[str, KeyStatus | None] = {}
        for p in config.identity_providers:
            source = self.keys.peek(p)
            result[p.name] = source.status() if source else None
        return result

    async def check(self, provider: IdentityProvider) -> KeyStatus:
        """Fetch one provider's keys now, outside the cache: what an operator's "validate JWKS" shows,
        for a provider this process may not have loaded yet, without touching the keys requests use."""
        source = self.keys.detached(provider)
        await source.refresh()
        return source.status()

    async def quiesce(self) -> None:
        """Wait for background key refreshes in flight (tests, orderly shutdown)."""
        await self.keys.quiesce()

    async def aclose(self) -> None:
        if self._groups is not None:
            await self._groups.aclose()
        await self.keys.aclose()
        await self._fetcher.aclose()
