"""Role decisions (SPEC §6): highest role over all principals, workspaces, admins, deny by default."""

from __future__ import annotations

import pytest

from shared.access import Policy
from shared.config.schema import parse

CONFIG = parse({
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
    (set(), "model:open", None),
])
def test_effective_role(principals: set[str], resource: str, role: str | None) -> None:
    assert POLICY.decide(principals, resource).role == role


def test_allows_compares_ranks() -> None:
    assert POLICY.allows({"identity:scientists"}, "model:lab", "editor")
    assert not POLICY.allows({"identity:apps"}, "model:open", "editor")
