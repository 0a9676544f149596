"""The ordered checks for one token: cheap ones first, key fetches last, the signature at the end.

size -> format -> header -> issuer (choose the provider) -> time -> audience -> unique_id -> key ->
signature. A token with an unknown issuer, a bad time or the wrong audience never causes a fetch.
Each check records its outcome on an optional `Trace`; the first failure raises `Refused`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..config.model import IdentityProvider
from . import claims as claim_checks
from . import jws, signature
from .jwk import PublicKey
from .jwks import KeyCache, KeyHit, KeySource
from .redact import show
from .selection import select
from .trace import Context, KeyReport, Refused, Trace


@dataclass(frozen=True, slots=True)
class Verified:
    provider: IdentityProvider
    claims: Mapping[str, Any]
    unique_id: str
    email: str | None
    exp: int
    key: PublicKey
    source: KeySource


class Verifier:
    def __init__(self, *, keys: KeyCache, leeway: int, wall: Callable[[], float]) -> None:
        self._keys = keys
        self._leeway = leeway
        self._wall = wall

    async def verify(self, token: str, providers: Sequence[IdentityProvider], context: Context,
                     trace: Trace | None = None) -> Verified:
        try:
            return await self._verify(token, providers, context, trace)
        except Refused as refused:
            if trace is not None:
                trace.failed(refused.check, refused.reason)
            raise

    async def _verify(self, token: str, providers: Sequence[IdentityProvider], context: Context,
                      trace: Trace | None) -> Verified:
        parsed = jws.parse(token, context)
        claims = parsed.claims
        if trace is not None:
            trace.passed("size", f"{len(token)} bytes")
            trace.passed("format", "three canonical base64url segments, JSON objects")
            trace.passed("header", f"alg {parsed.alg}, kid {show(parsed.kid)}")

        if "iss" in claims and not isinstance(claims["iss"], str):
            raise Refused("issuer", "iss claim must be a string")   # null is not "absent"
        selection = select(providers, claims.get("iss"))
        if trace is not None:
            trace.passed("issuer", selection.reason)
            trace.provider_reason = selection.reason

        exp = claim_checks.check_times(claims, self._wall(), self._leeway)
        if trace is not None:
            trace.passed("time", f"exp {exp}, allowed clock skew {self._leeway} s")

        candidates = self._filter(selection.providers, lambda p: claim_checks.check_audience(
            claims, p.audiences))
        if trace is not None:
            trace.passed("audience", "no audience configured" if not any(p.audiences for p in candidates)
                         else f"aud matches {', '.join(repr(p.name) for p in candidates)}")
        candidates = self._filter(candidates, lambda p: claim_checks.unique_id(claims, p.unique_id_claim))
        if selection.by_issuer and len(candidates) > 1:
            raise Refused("issuer", "ambiguous: providers " + ", ".join(repr(p.name) for p in candidates)
                          + " share this issuer and accept this audience",
                          "ambiguous issuer: more than one identity provider accepts this token")
        if trace is not None:
            trace.passed("unique_id", ", ".join(f"{p.name}: claim {show(p.unique_id_claim)} present"
                                                for p in candidates))

        provider, hit = await self._key(candidates, parsed.kid)
        context.provider = provider.name
        if trace is not None:
            trace.provider = provider.name
            trace.key = KeyReport(provider=provider.name, kid=hit.key.kid, alg=hit.key.alg,
                                  thumbprint=hit.key.thumbprint, jwks_uri=hit.jwks_uri, state=hit.state,
                                  age_seconds=hit.age)
        if hit.key.alg != parsed.alg:
            raise Refused("key", f"token alg {show(parsed.alg)} does not match key {show(hit.key.kid)} of "
                                 f"identity provider {provider.name!r}, which is {hit.key.alg} only",
                          "the token's alg does not match its key's algorithm")
        if trace is not None:
            # how fresh the key set is in this process is in `trace.key`, not here: the checks read
            # the same from every process (the CLI's explain and /manage/explain)
            trace.passed("key", f"key {show(hit.key.kid)} ({hit.key.alg}) of {provider.name!r}")

        # the key's own algorithm, equal to the header's by the check above
        if not signature.verify(hit.key.alg, hit.key.key, parsed.signing_input, parsed.signature):
            raise Refused("signature", f"signature does not verify with key {show(hit.key.kid)} of "
                                       f"identity provider {provider.name!r}", "signature does not verify")
        if trace is not None:
            trace.passed("signature", f"{parsed.alg} signature verified")
        return Verified(provider=provider, claims=claims,
                        unique_id=claim_checks.unique_id(claims, provider.unique_id_claim),
                        email=claim_checks.email(claims, provider.email_claim), exp=exp, key=hit.key,
                        source=self._keys.source(provider))

    @staticmethod
    def _filter(providers: Sequence[IdentityProvider],
                check: Callable[[IdentityProvider], object]) -> tuple[IdentityProvider, ...]:
        """The providers passing `check`; if none does, the first refusal."""
        passing: list[IdentityProvider] = []
        first: Refused | None = None
        for p in providers:
            try:
                check(p)
            except Refused as refused:
                first = first or refused
                continue
            passing.append(p)
        if not passing:
            raise first or Refused("issuer", "no identity provider is configured", "unknown issuer")
        return tuple(passing)

    async def _key(self, candidates: Sequence[IdentityProvider],
                   kid: str | None) -> tuple[IdentityProvider, KeyHit]:
        """The key among the chosen provider's own keys; for issuer-less providers, the one provider
        whose own keys hold this kid (never a merged key map)."""
        if len(candidates) == 1:
            return candidates[0], await self._keys.source(candidates[0]).key(kid)
        names = ", ".join(repr(p.name) for p in candidates)
        if kid is None:
            raise Refused("key", f"token has no kid, which is needed to choose among the identity "
                                 f"providers without an issuer ({names})", "token has no kid")
        results = await asyncio.gather(*(self._keys.source(p).key(kid) for p in candidates),
                                       return_exceptions=True)
        hits = [(p, r) for p, r in zip(candidates, results, strict=True) if isinstance(r, KeyHit)]
        for r in results:
            if isinstance(r, BaseException) and not isinstance(r, Refused):
                raise r
        if len(hits) > 1:
            raise Refused("key", f"key id {show(kid)} is held by several identity providers without an "
                                 f"issuer ({', '.join(repr(p.name) for p, _ in hits)}): configure their "
                                 "issuers", "ambiguous key id: several identity providers hold it")
        if not hits:
            reasons = "; ".join(r.reason for r in results if isinstance(r, Refused))
            raise Refused("key", f"no identity provider without an issuer holds key id {show(kid)}: "
                                 f"{reasons}", "unknown key id")
        return hits[0]
