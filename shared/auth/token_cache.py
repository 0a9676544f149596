"""Verified tokens by SHA-256 of the token, so a repeated token costs microseconds, not a signature check.

Bounded (least recently used goes first) and valid only until the token's `exp` (plus leeway), while
the configuration that verified it is unchanged and its key is still held. A positive cache only: an
ECDSA signature can be re-encoded into another valid string, which here only means another miss; this
cache must never serve as a deny-list or replay check, which would have to key on verified claims.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..config.model import ExternalIdentity, IdentityProvider
from .identities import Principal
from .jwks import KeySource

DEFAULT_MAX_ENTRIES = 4096


@dataclass(frozen=True, slots=True)
class CachedToken:
    provider: IdentityProvider
    source: KeySource                                  # where its key is held (checked on every hit)
    kid: str | None
    thumbprint: str
    exp: int
    claims: Mapping[str, Any]
    principal: Principal
    providers: tuple[IdentityProvider, ...]          # the configuration it was verified under
    external_identities: tuple[ExternalIdentity, ...]


class VerifiedTokenCache:
    def __init__(self, max_entries: int = DEFAULT_MAX_ENTRIES) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[bytes, CachedToken] = OrderedDict()
        self.hits = 0                                   # for status and benchmarks

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, token_digest: bytes) -> CachedToken | None:
        entry = self._entries.get(token_digest)
        if entry is not None:
            self._entries.move_to_end(token_digest)
            self.hits += 1
        return entry

    def put(self, token_digest: bytes, entry: CachedToken) -> None:
        if self.max_entries <= 0:
            return
        self._entries[token_digest] = entry
        self._entries.move_to_end(token_digest)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def discard(self, token_digest: bytes) -> None:
        self._entries.pop(token_digest, None)

    def clear(self) -> None:
        self._entries.clear()
