"""Role decisions: highest role over all principals, workspaces, admins, accounts, deny by default."""

from __future__ import annotations

import pytest

from shared.access import Policy
from shared.config.schema import parse

CONFIG = parse({
    "identity_providers": [{"name": "p", "jwks_uri": "https://p.example.com/keys"},
                           {"name": "q", "jwks_uri": "https://q.example.com/keys"}],
    "external_identities": [{"name": "apps", "identity_provider": "p"},
                            {"name": "scientists", "identity_provider": "p"}],
    "workspaces": [{"name": "research"}],
    "accounts": [{"name": "a", "endpoint": "https://a.openai.azure.com",
                  "auth": {"type": "api-key", "key_env": "GATEWAY_SECRET_K"}}],
    "models": [{"name": "open", "targets": [{"account": "a", "deployment": "d"}]},
               {"name": "lab", "workspace": "research", "targets": [{"account": "a", "deployment": "d"}]},
               {"name": "closed", "targets": [{"account": "a", "deployment": "d"}]}],
    "collaborators": [
        {"resource": "model:open", "principal": "identity:apps", "role": "viewer"},
        {"resource": "model:open", "principal": "user:p/alice", "role": "editor"},
        {"resource": "workspace:research", "principal": "identity:scientists", "role": "manager"},
        {"resource": "account:a", "principal": "user:p/alice", "role": "viewer"},
        {"resource": "gateway:default", "principal": "user:p/root", "role": "admin"},
    ],
})
POLICY = Policy(CONFIG, admins=frozenset({"user:p/bootstrap"}))


@pytest.mark.parametrize(("principals", "resource", "role"), [
    ({"identity:apps"}, "model:open", "viewer"),
    ({"identity:apps", "user:p/alice"}, "model:open", "editor"),
    ({"user:p/alice"}, "model:lab", None),
    ({"identity:scientists"}, "model:lab", "manager"),
    ({"identity:scientists"}, "model:open", None),
    ({"identity:apps"}, "model:closed", None),
    ({"user:p/root"}, "model:closed", "admin"),
    ({"user:p/bootstrap"}, "model:closed", "admin"),
    ({"user:q/alice"}, "model:open", None),             # same id, other provider: another user
    ({"user:p/alice"}, "account:a", "viewer"),
    ({"identity:apps"}, "account:a", None),
    (set(), "model:open", None),
])
def test_effective_role(principals: set[str], resource: str, role: str | None) -> None:
    assert POLICY.decide(principals, resource).role == role


def test_allows_compares_ranks() -> None:
    assert POLICY.allows({"identity:scientists"}, "model:lab", "editor")
    assert not POLICY.allows({"identity:apps"}, "model:open", "editor")


@pytest.mark.parametrize(("principals", "scope", "rank"), [
    ({"identity:scientists"}, "model:lab", 0),           # the workspace's role is not counted here
    ({"identity:scientists"}, "workspace:research", 3),
    ({"user:p/root"}, "model:lab", 4),
    ({"user:p/bootstrap"}, "workspace:research", 4),
    ({"user:p/alice"}, "model:open", 2),
])
def test_rank_on_exactly_one_scope(principals: set[str], scope: str, rank: int) -> None:
    assert POLICY.rank_on(principals, scope) == rank


@pytest.mark.parametrize(("principals", "reach"), [
    (set(), set()),
    ({"user:p/nobody"}, set()),
    ({"user:p/alice"}, {"model", "account"}),
    ({"identity:scientists"}, {"workspace"}),
    ({"user:p/bootstrap"}, {"gateway"}),
    ({"user:p/root"}, {"gateway"}),
])
def test_reach_is_known_without_storage(principals: set[str], reach: set[str]) -> None:
    assert POLICY.reach(principals) == reach
