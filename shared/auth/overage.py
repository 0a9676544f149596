"""Entra ID group overage: a token whose `groups` claim was left out because the user is in too many
groups (over 200 in a JWT). Entra then names the claim in `_claim_names` and points at Graph in
`_claim_sources` instead. A claim condition on `groups` can then be neither true nor false: its outcome
is unknown. The external identity does not match (deny by default), and explain says why and how to fix
it, rather than the condition silently failing for exactly the users in the most groups.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ..config.model import ExternalIdentity

GROUPS = "groups"
FIX = ("emit groups as app roles, or configure group filtering (groups assigned to the application) on "
       "the app registration, or set groups_from_graph: true on the identity provider")


def is_overage(claims: Mapping[str, Any]) -> bool:
    """The token says its `groups` were left out: `_claim_names` names them and no `groups` claim is there."""
    names = claims.get("_claim_names")
    return isinstance(names, Mapping) and GROUPS in names and GROUPS not in claims


@dataclass(frozen=True, slots=True)
class Unknown:
    """An external identity whose `groups` condition could not be decided for this token."""

    identity: str
    why: str            # for explain: what is unknown and how to fix it


def unknown_conditions(provider: str, claims: Mapping[str, Any], identities: Iterable[ExternalIdentity],
                       *, looked_up: str | None = None) -> tuple[Unknown, ...]:
    """The identities of `provider` with a condition on `groups` when the token is an overage one whose
    groups were not resolved. `looked_up`: why a Graph lookup gave no answer, when one was tried."""
    if not is_overage(claims):
        return ()
    tried = f"; the Graph lookup gave no answer ({looked_up})" if looked_up else ""
    return tuple(
        Unknown(identity.name, f"identity:{identity.name}: the condition on groups is unknown: the token "
                               f"left its groups out (Entra group overage){tried}; it does not match. "
                               f"Fix: {FIX}")
        for identity in identities
        if identity.identity_provider == provider and GROUPS in identity.claims)


def with_groups(claims: Mapping[str, Any], groups: tuple[str, ...]) -> dict[str, Any]:
    """The claims as if the token had carried the groups Graph returned."""
    return {**claims, GROUPS: list(groups)}
