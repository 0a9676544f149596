"""The OAuth `state` of one authorization: sealed, so the callback (a browser redirect without the
caller's token) learns from it alone who started the flow, for which server, and the PKCE verifier.

It is encrypted and authenticated under GATEWAY_SEALING_KEY (any instance opens it; nobody can read or
alter it), bound to the server's name, URL and client id (a state from another server, or from before
the server was repointed, does not open), and lives `LIFETIME_S`. A nonce makes each one unique so the
store can refuse a second redemption.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .seal import b64url

if TYPE_CHECKING:
    from ..config.model import McpServer
    from .seal import Sealer

LIFETIME_S = 600
PURPOSE = "oauth-state"
MAX_STATE = 2048


@dataclass(frozen=True, slots=True)
class Started:
    principal: str              # user:<provider>/<unique id>
    verifier: str               # the PKCE code verifier
    nonce: str
    expires_at: float


def pkce_pair() -> tuple[str, str]:
    """(verifier, S256 challenge): 43 characters of base64url randomness and its SHA-256."""
    verifier = b64url(os.urandom(32))
    return verifier, b64url(hashlib.sha256(verifier.encode("ascii")).digest())


def _context(server: McpServer) -> str:
    return f"{server.name}\n{server.url}\n{server.auth.options.get('client_id', '')}"


class States:
    def __init__(self, sealer: Sealer, clock: Callable[[], float] = time.time) -> None:
        self._sealer = sealer
        self._clock = clock

    def seal(self, server: McpServer, principal: str, verifier: str) -> str:
        body = {"p": principal, "v": verifier, "n": b64url(os.urandom(16)),
                "e": int(self._clock()) + LIFETIME_S}
        return self._sealer.encrypt(PURPOSE, json.dumps(body).encode(), context=_context(server))

    def open(self, server: McpServer, state: str) -> Started | None:
        """What `state` says, or None when it is not one this gateway sealed for `server`, or expired."""
        if len(state) > MAX_STATE:
            return None
        raw = self._sealer.decrypt(PURPOSE, state, context=_context(server))
        if raw is None:
            return None
        body = json.loads(raw)
        if body["e"] <= self._clock():
            return None
        return Started(principal=body["p"], verifier=body["v"], nonce=body["n"], expires_at=body["e"])
