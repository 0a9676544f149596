"""Identity assertions: short-lived JWTs the gateway signs about its caller, for an MCP server or agent.

`iss` is the gateway's public URL, `sub` the caller's principal (`user:<provider>/<unique id>`), `email`
when the caller's token had one, `aud` the server's URL; they live `LIFETIME_S` and are reused for most
of that (signing per call would cost more than the call's bookkeeping). The server verifies them with
the keys at `<public URL>/.well-known/jwks.json`, so it can personalise per user without ever seeing the
caller's own token.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .seal import b64url

if TYPE_CHECKING:
    from ..auth.identities import Principal
    from .seal import Sealer

LIFETIME_S = 300
REUSE_S = 240
_CACHE_MAX = 10_000


class AssertionSigner:
    def __init__(self, sealer: Sealer, issuer: str, clock: Callable[[], float] = time.time) -> None:
        self._sealer = sealer
        self.issuer = issuer
        self._clock = clock
        self._cache: dict[tuple[str, str | None, str], tuple[float, str]] = {}

    @property
    def kid(self) -> str:
        return self.jwk()["kid"]

    def jwk(self) -> dict[str, str]:
        """The public key as a JWK, its `kid` the RFC 7638 thumbprint."""
        numbers = self._sealer.signing_key.public_key().public_numbers()
        x, y = b64url(numbers.x.to_bytes(32, "big")), b64url(numbers.y.to_bytes(32, "big"))
        canonical = f'{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}'.encode()
        kid = b64url(hashlib.sha256(canonical).digest())
        return {"kty": "EC", "crv": "P-256", "x": x, "y": y, "kid": kid, "use": "sig", "alg": "ES256"}

    def jwks(self) -> dict[str, Any]:
        return {"keys": [self.jwk()]}

    def assertion(self, principal: Principal, *, audience: str) -> str:
        key = (principal.user, principal.email, audience)
        now = self._clock()
        cached = self._cache.get(key)
        if cached is not None and now - cached[0] < REUSE_S:
            return cached[1]
        token = self._sign(principal, audience, int(now))
        if len(self._cache) >= _CACHE_MAX:
            self._cache.clear()
        self._cache[key] = (now, token)
        return token

    def _sign(self, principal: Principal, audience: str, now: int) -> str:
        import jwt

        claims: dict[str, Any] = {"iss": self.issuer, "sub": principal.user, "aud": audience, "iat": now,
                                  "nbf": now - 5, "exp": now + LIFETIME_S, "jti": os.urandom(12).hex()}
        if principal.email:
            claims["email"] = principal.email
        return jwt.encode(claims, self._sealer.signing_key, algorithm="ES256",
                          headers={"kid": self.kid, "typ": "JWT"})
