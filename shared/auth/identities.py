"""The principal a verified token yields, and the external identities its claims match.

The user principal is scoped by provider, so the same unique id from two providers is two users. An
external identity of the token's provider matches when every one of its claim conditions holds; every
matching identity is assigned.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ..config.model import ExternalIdentity
from .claims import found, lookup

# OAuth scope claims are one space-delimited string (RFC 8693 `scope`, Entra `scp`): containment
# there means one of its words.
SPACE_DELIMITED = frozenset({"scp", "scope"})


@dataclass(frozen=True, slots=True)
class Principal:
    provider: str
    unique_id: str
    email: str | None
    identities: frozenset[str]  # external identity names

    @property
    def user(self) -> str:
        return f"user:{self.provider}/{self.unique_id}"

    @property
    def principals(self) -> frozenset[str]:
        return frozenset({self.user, *(f"identity:{name}" for name in self.identities)})


def _same(a: Any, b: Any) -> bool:
    """Equality without Python's cross-type surprises (True == 1, 1 == 1.0)."""
    return type(a) is type(b) and a == b


def condition_holds(claims: Mapping[str, Any], path: str, expected: Any) -> bool:
    """The claim at `path` (exact name, else dotted path) equals `expected`, or is a list containing it."""
    value = lookup(claims, path)
    if not found(value):
        return False
    if isinstance(value, list):
        return any(_same(item, expected) for item in value)
    if isinstance(value, str) and path in SPACE_DELIMITED and isinstance(expected, str):
        return expected in value.split()
    return _same(value, expected)


def match_identities(provider: str, claims: Mapping[str, Any],
                     external_identities: Iterable[ExternalIdentity]) -> frozenset[str]:
    """Names of every external identity of `provider` whose claim conditions all hold."""
    return frozenset(
        identity.name for identity in external_identities
        if identity.identity_provider == provider
        and all(condition_holds(claims, path, value) for path, value in identity.claims.items()))
