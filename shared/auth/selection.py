"""Which identity provider a token belongs to: the exact `iss`, never a fallback to the first one.

Providers with an `issuer` are chosen only by an exact, case-sensitive match. Providers without one
are candidates for any other token, and are then told apart by key id among their own keys.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from ..config.model import IdentityProvider
from .redact import show
from .trace import Refused

_ENTRA_V1 = re.compile(r"^https://sts\.windows\.net/([0-9a-fA-F-]{36})/$")
_ENTRA_V2 = re.compile(r"^https://login\.microsoftonline\.com/([0-9a-fA-F-]{36})/v2\.0$")


@dataclass(frozen=True, slots=True)
class Selection:
    providers: tuple[IdentityProvider, ...]
    by_issuer: bool        # True: exact issuer match; False: issuer-less providers, to be told apart by kid
    reason: str


def select(providers: Sequence[IdentityProvider], iss: object) -> Selection:
    if iss is not None and not isinstance(iss, str):
        raise Refused("issuer", "iss claim must be a string")
    if isinstance(iss, str):
        exact = tuple(p for p in providers if p.issuer is not None and p.issuer == iss)
        if exact:
            names = ", ".join(repr(p.name) for p in exact)
            return Selection(exact, True, f"iss matches the issuer of {names} exactly")
    open_providers = tuple(p for p in providers if p.issuer is None)
    if open_providers:
        names = ", ".join(repr(p.name) for p in open_providers)
        why = "token has no iss" if iss is None else f"no provider has issuer {show(iss)}"
        return Selection(open_providers, False, f"{why}; trying the providers without an issuer "
                                                f"({names}) by key id")
    if iss is None:
        raise Refused("issuer", "token has no iss claim and every identity provider requires an issuer",
                      "token has no iss claim")
    raise Refused("issuer", f"unknown issuer {show(iss)}" + _hint(providers, iss), "unknown issuer")


def _hint(providers: Sequence[IdentityProvider], iss: str) -> str:
    """Name the near miss an operator would otherwise hunt for (issuers must match exactly)."""
    v1, v2 = _ENTRA_V1.match(iss), _ENTRA_V2.match(iss)
    for p in providers:
        if p.issuer is None:
            continue
        if v1 and _ENTRA_V2.match(p.issuer):
            return (f" (an Entra v1 token; provider {p.name!r} expects v2 tokens: set the app's "
                    "accessTokenAcceptedVersion to 2, or add a provider with the v1 issuer)")
        if v2 and _ENTRA_V1.match(p.issuer):
            return f" (an Entra v2 token; provider {p.name!r} expects v1 tokens)"
        if p.issuer.rstrip("/").lower() == iss.rstrip("/").lower():
            return f" (provider {p.name!r} has {show(p.issuer)}: issuers must match exactly)"
    return ""
