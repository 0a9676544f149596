"""The whole role x operation matrix of /manage, as each caller sees it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from sandbox.emulator import AzureOpenAIEmulator
from sandbox.idp import DevIdentityProvider
from tests.harness import Api, NewWorld, sandbox_config
from tests.manage.conftest import ROOT_ADMIN, every_item

ROLES = ("nobody", "viewer", "editor", "manager", "admin", "env-admin")
TARGET = {"targets": [{"account": "emulator", "deployment": "d"}]}
ACCOUNT = {"endpoint": "https://a.openai.azure.com", "auth": {"type": "managed-identity"}}

# operation -> (request maker over the case's own model name, expected status per role in ROLES order)
OPERATIONS: dict[str, tuple[Any, tuple[int, ...]]] = {
    "read model": (lambda api, m: api.get(f"models/{m}"), (404, 200, 200, 200, 200, 200)),
    "change model": (lambda api, m: api.put(f"models/{m}", TARGET), (404, 403, 200, 200, 200, 200)),
    "delete model": (lambda api, m: api.delete(f"models/{m}"), (404, 403, 403, 204, 204, 204)),
    "list its collaborators": (lambda api, m: api.get("collaborators", params={"resource": f"model:{m}"}),
                               (404, 403, 403, 200, 200, 200)),
    "grant on it": (lambda api, m: api.put("collaborators", {"resource": f"model:{m}",
                                                             "principal": "user:dev/new", "role": "viewer"}),
                    (404, 403, 403, 201, 201, 201)),
    "revoke on it": (lambda api, m: api.delete("collaborators", {"resource": f"model:{m}",
                                                                 "principal": "user:dev/old"}),
                     (404, 403, 403, 204, 204, 204)),
    "create a model": (lambda api, m: api.put(f"models/{m}-new", TARGET), (404, 404, 404, 404, 201, 201)),
    "create a workspace": (lambda api, m: api.put(f"workspaces/{m}-ws", {}), (404, 404, 404, 404, 201, 201)),
    "read identity providers": (lambda api, m: api.get("identity-providers"), (403, 403, 403, 403, 200, 200)),
    # rate limits, budgets and prices are the gateway's own, like identity providers: admins only
    "read rate limits": (lambda api, m: api.get("rate-limits"), (403, 403, 403, 403, 200, 200)),
    "create a rate limit": (lambda api, m: api.put(f"rate-limits/{m}-rl", {"limits": [{"requests": 1,
                                                                                        "per": "minute"}]}),
                            (403, 403, 403, 403, 201, 201)),
    "set its price": (lambda api, m: api.put(f"prices/{m}", {"input": 1, "output": 1}),
                      (403, 403, 403, 403, 201, 201)),
    "read a budget": (lambda api, m: api.get("budgets/none"), (403, 403, 403, 403, 404, 404)),
    "read an account": (lambda api, m: api.get("accounts/emulator"), (404, 404, 404, 404, 200, 200)),
    "create an account": (lambda api, m: api.put(f"accounts/{m}-new", ACCOUNT),
                          (404, 404, 404, 404, 201, 201)),
    # on an account of the case's own, the role bound on account:<it>
    "read its account": (lambda api, m: api.get(f"accounts/{m}"), (404, 200, 200, 200, 200, 200)),
    "change its account": (lambda api, m: api.put(f"accounts/{m}", ACCOUNT), (404, 403, 403, 403, 200, 200)),
    "delete its account": (lambda api, m: api.delete(f"accounts/{m}"), (404, 403, 403, 403, 204, 204)),
    "grant on its account": (lambda api, m: api.put("collaborators", {"resource": f"account:{m}",
                                                                      "principal": "user:dev/new",
                                                                      "role": "viewer"}),
                             (404, 403, 403, 201, 201, 201)),
    "target its account": (lambda api, m: api.put(f"models/{m}", {"targets": [{"account": m,
                                                                               "deployment": "d"}]}),
                           (404, 200, 400, 200, 200, 200)),
    "read external identities": (lambda api, m: api.get("external-identities/developers"),
                                 (403, 403, 403, 403, 200, 200)),
    "grant admin": (lambda api, m: api.put("collaborators", {"resource": "gateway:default",
                                                             "principal": f"user:dev/{m}", "role": "admin"}),
                    (403, 403, 403, 403, 201, 201)),
    "status": (lambda api, m: api.get("status"), (403, 403, 403, 403, 200, 200)),
    "explain": (lambda api, m: api.post("explain", {"token": "x", "resource": f"model:{m}"}),
                (403, 403, 403, 403, 200, 200)),
}


def case_model(role: str, operation: str) -> str:
    return f"m-{role}-{operation.replace(' ', '-')}"[:60].rstrip("-")


@pytest.fixture(scope="module")
def callers(new_world: NewWorld, idp: DevIdentityProvider,
            emulator: AzureOpenAIEmulator) -> Iterator[dict[str, Api]]:
    models, accounts = [], []
    bindings = [{"resource": "gateway:default", "principal": "user:dev/admin", "role": "admin"}]
    for role in ROLES:
        for operation in OPERATIONS:
            name = case_model(role, operation)
            models.append({"name": name, **TARGET})
            bound = role in ("viewer", "editor", "manager")
            resource = f"account:{name}" if "its account" in operation else f"model:{name}"
            bindings.append({"resource": resource, "principal": "user:dev/old", "role": "viewer"})
            if "its account" not in operation:
                if bound:
                    bindings.append({"resource": resource, "principal": f"user:dev/{role}", "role": role})
                continue
            accounts.append({"name": name, **ACCOUNT})
            if operation == "target its account":
                # everyone bound may change the model; the editor row holds no role on the account
                if bound:
                    bindings.append({"resource": f"model:{name}", "principal": f"user:dev/{role}",
                                     "role": "editor"})
                bound = role in ("viewer", "manager")
            if bound:
                bindings.append({"resource": resource, "principal": f"user:dev/{role}", "role": role})
    doc = sandbox_config(idp, emulator)
    doc["models"] += models
    doc["accounts"] += accounts
    doc["collaborators"] += bindings
    with new_world(config=doc, env={"GATEWAY_ADMINS": ROOT_ADMIN}) as world:
        yield {role: world.api("root" if role == "env-admin" else role) for role in ROLES}


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("operation", list(OPERATIONS))
def test_role_x_operation(callers: dict[str, Api], role: str, operation: str) -> None:
    call, expected = OPERATIONS[operation]
    answer = call(callers[role], case_model(role, operation))
    want = expected[ROLES.index(role)]
    assert answer.status_code == want, f"{role} / {operation}: {answer.status_code} {answer.text}"
    if want == 404:   # the same answer as for a resource that does not exist
        assert answer.json()["error"]["code"] == "not_found"
        if operation in ("read model", "delete model"):
            ghost = call(callers[role], "no-such-model")
            assert ghost.status_code == 404
            same = ghost.text.replace("no-such-model", "N")
            assert answer.text.replace(case_model(role, operation), "N") == same


@pytest.mark.parametrize("role", ROLES)
def test_lists_show_only_what_the_caller_may_see(callers: dict[str, Api], role: str) -> None:
    mine = case_model(role, "read model")
    names = [m["name"] for m in every_item(callers[role], "models")]
    if role == "nobody":
        assert names == []
    else:
        assert mine in names
    if role in ("viewer", "editor"):
        assert "secret-model" not in names
        assert every_item(callers[role], "collaborators") == []
    if role == "manager":
        seen = {b["resource"] for b in every_item(callers[role], "collaborators")}
        assert seen and all(r.partition(":")[2].startswith("m-manager-") for r in seen)
