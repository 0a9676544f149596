"""External identities: every condition must hold, by equality or list containment, with dotted paths
into nested claims; every matching identity is assigned; only the token's own provider's identities."""

from __future__ import annotations

from typing import Any

import pytest

from shared.auth.identities import Principal, condition_holds, match_identities
from shared.config.model import ExternalIdentity, frozen_mapping

CLAIMS: dict[str, Any] = {
    "sub": "alice", "groups": ["developers", "readers"], "tier": "gold", "level": 3, "admin": True,
    "realm_access": {"roles": ["offline_access", "gateway-user"]},
    "resource_access": {"gateway": {"roles": ["invoke"]}},
    "https://example.com/roles": ["partner"], "scp": "gateway.invoke user.read", "flag": 1,
    "a.b": "literal", "a": {"b": "nested"},
}


def identity(name: str, provider: str = "okta", **claims: Any) -> ExternalIdentity:
    return ExternalIdentity(name, provider, frozen_mapping(claims))


@pytest.mark.parametrize(("path", "value", "holds"), [
    ("tier", "gold", True), ("tier", "silver", False),
    ("groups", "developers", True), ("groups", "admins", False),
    ("realm_access.roles", "gateway-user", True), ("realm_access.roles", "admin", False),
    ("resource_access.gateway.roles", "invoke", True),
    ("https://example.com/roles", "partner", True),       # a namespaced claim name with dots
    ("a.b", "literal", True),                             # the exact name wins over the path
    ("level", 3, True), ("level", "3", False),            # types are not coerced
    ("admin", True, True), ("flag", True, False), ("admin", 1, False),
    ("scp", "gateway.invoke", True), ("scp", "gateway", False), ("scp", "user.read", True),
    ("tier", "gol", False), ("missing", "x", False), ("realm_access.missing", "x", False),
    ("groups.0", "developers", False), ("sub.x", "a", False),
])
def test_condition(path: str, value: Any, holds: bool) -> None:
    assert condition_holds(CLAIMS, path, value) is holds


def test_every_matching_identity_of_the_provider_is_assigned() -> None:
    identities = [
        identity("developers", groups="developers"),
        identity("gold-devs", groups="developers", tier="gold"),
        identity("gold-admins", groups="admins", tier="gold"),            # one condition fails
        identity("kc-users", **{"realm_access.roles": "gateway-user"}),
        identity("everyone"),                                              # no conditions
        identity("other-provider", "entra", groups="developers"),          # another provider's
    ]
    assert match_identities("okta", CLAIMS, identities) == frozenset(
        {"developers", "gold-devs", "kc-users", "everyone"})
    assert match_identities("entra", CLAIMS, identities) == frozenset({"other-provider"})


def test_principal() -> None:
    p = Principal(provider="k8s", unique_id="system:serviceaccount:ns:sa/x|y#z", email=None,
                  identities=frozenset({"a", "b"}))
    assert p.user == "user:k8s/system:serviceaccount:ns:sa/x|y#z"
    assert p.principals == frozenset({p.user, "identity:a", "identity:b"})
    with pytest.raises(AttributeError):
        p.provider = "other"  # type: ignore[misc]
