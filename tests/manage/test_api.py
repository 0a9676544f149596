"""/manage end to end: a real gateway process, Azurite, tokens from the dev IdP, plain HTTP."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from sandbox.emulator import AzureOpenAIEmulator
from sandbox.idp import DevIdentityProvider
from tests.harness import Api, NewWorld, World, sandbox_config
from tests.manage.conftest import ROOT_ADMIN, cli, wait_until


@pytest.fixture(scope="module")
def world(new_world: NewWorld, idp: DevIdentityProvider, emulator: AzureOpenAIEmulator) -> Iterator[World]:
    with new_world(config=sandbox_config(idp, emulator, workspaces=[{"name": "research"}]),
                   env={"GATEWAY_ADMINS": ROOT_ADMIN}) as world:
        yield world


# One valid document per kind, and what each kind needs to exist first.
DOCS: dict[str, dict[str, Any]] = {
    "identity-providers": {"jwks_uri": "https://idp.example.com/keys", "issuer": "https://idp.example.com"},
    "external-identities": {"identity_provider": "dev", "claims": {"groups": "ops"}},
    "accounts": {"kind": "azure-openai", "endpoint": "https://x.openai.azure.com",
                 "auth": {"type": "api-key", "key_env": "GATEWAY_SECRET_X_KEY"}},
    "models": {"targets": [{"account": "emulator", "deployment": "d1"}]},
    "mcp-servers": {"url": "https://mcp.example.com/sse", "workspace": "research"},
    "agents": {"url": "https://agent.example.com"},
    "workspaces": {},
    "rate-limits": {"when": {"models": {"in": ["gpt-4o"]}}, "per": ["user"],
                    "limits": [{"requests": 60, "per": "minute"}]},
    "budgets": {"usd": {"day": 5}},
    "prices": {"input": 2.5, "output": 10},
}
CHANGED: dict[str, dict[str, Any]] = {
    "identity-providers": {"audiences": ["api://other"]},
    "external-identities": {"claims": {"groups": "sre"}},
    "accounts": {"api_version": "2025-01-01"},
    "models": {"targets": [{"account": "emulator", "deployment": "d2"}]},
    "mcp-servers": {"url": "https://mcp.example.com/v2"},
    "agents": {"workspace": "research"},
    "workspaces": None,
    "rate-limits": {"limits": [{"requests": 30, "per": "minute"}, {"tokens": 9000, "per": "day"}]},
    "budgets": {"usd": {"day": 5, "month": 100}, "on_store_error": "allow"},
    "prices": {"cached_input": 1.25, "from": "2026-01-01"},
}
KEYS = {"prices": ("model", "embed")}   # a price is named by its model, which must exist


@pytest.mark.parametrize("kind", list(DOCS))
def test_crud_with_etags_for_every_kind(world: World, kind: str) -> None:
    api: Api = world.api("root")
    key, name = KEYS.get(kind, ("name", f"crud-{kind}"))
    created = api.put(f"{kind}/{name}", DOCS[kind], headers={"If-None-Match": "*"})
    assert created.status_code == 201, created.text
    etag = created.headers["ETag"]
    got = api.get(f"{kind}/{name}")
    assert got.status_code == 200 and got.headers["ETag"] == etag
    assert got.json() == {key: name, **DOCS[kind]}
    assert name in [d[key] for d in api.get(kind).json()["items"]]
    assert api.put(f"{kind}/{name}", DOCS[kind], headers={"If-None-Match": "*"}).status_code == 412

    if CHANGED[kind] is not None:
        changed = {**DOCS[kind], **CHANGED[kind]}
        updated = api.put(f"{kind}/{name}", changed, headers={"If-Match": etag})
        assert updated.status_code == 200, updated.text
        assert updated.headers["ETag"] != etag
        stale = api.put(f"{kind}/{name}", DOCS[kind], headers={"If-Match": etag})
        assert stale.status_code == 412 and stale.json()["error"]["code"] == "precondition_failed"
        assert api.get(f"{kind}/{name}").json() == updated.json()   # the stale write lost nothing
        etag = updated.headers["ETag"]

    assert api.delete(f"{kind}/{name}", headers={"If-Match": '"W/stale"'}).status_code == 412
    assert api.get(f"{kind}/{name}").status_code == 200
    assert api.delete(f"{kind}/{name}", headers={"If-Match": etag}).status_code == 204
    gone = api.get(f"{kind}/{name}")
    assert gone.status_code == 404 and gone.json()["error"]["code"] == "not_found"
    assert api.delete(f"{kind}/{name}").status_code == 404


@pytest.mark.parametrize(("kind", "body", "param"), [
    ("models", {"targets": [{"account": "ghost", "deployment": "d"}]}, "targets[0].account"),
    ("models", {"targets": []}, "targets"),
    ("models", {"targets": [{"account": "emulator"}]}, "targets[0].deployment"),
    ("models", {"targets": [{"account": "emulator", "deployment": "d"}], "colour": "red"}, "colour"),
    ("models", {"targets": [{"account": "emulator", "deployment": "d"}], "workspace": "nope"}, "workspace"),
    ("models", {"name": "other", "targets": [{"account": "emulator", "deployment": "d"}]}, "name"),
    ("identity-providers", {"jwks_uri": "ftp://x"}, "jwks_uri"),
    ("external-identities", {"identity_provider": "nobody"}, "identity_provider"),
    ("accounts", {"endpoint": "https://x.example.com", "auth": {"type": "magic"}}, "auth.type"),
    ("accounts", {"endpoint": "https://x.example.com", "kind": "gcp"}, "kind"),
    ("rate-limits", {"limits": [{"requests": 1, "tokens": 1, "per": "minute"}]}, "limits[0]"),
    ("rate-limits", {"limits": [{"requests": 1, "per": "minute"}, {"requests": 2, "per": "minute"}]},
     "limits[1].per"),
    ("rate-limits", {"limits": [{"requests": 1, "per": "minute"}], "when": {"models": {"in": ["ghost"]}}},
     "when.models.in[0]"),
    ("rate-limits", {"limits": [{"requests": 1, "per": "minute"}], "per": ["model"], "overrides": [
        {"bucket": {"user": "user:dev/x"}, "limits": [{"tokens": 1, "per": "day"}]}]},
     "overrides[0].bucket.user"),
    ("rate-limits", {"limits": [{"requests": 1, "per": "minute"}], "per": ["user", "model", "workspace"]},
     "per"),
    ("budgets", {"usd": {"day": -1}}, "usd.day"),
    ("budgets", {"usd": {"day": 1}, "when": {"principals": {"in": ["identity:ghost"]}}},
     "when.principals.in[0]"),
    ("prices", {"input": 1, "output": 1}, "model"),           # no model named bad-one
    ("models", {"targets": [{"account": "emulator", "deployment": "d"}], "max_output_tokens": 0},
     "max_output_tokens"),
])
def test_bad_input_names_the_field_and_writes_nothing(world: World, kind: str, body: dict[str, Any],
                                                      param: str) -> None:
    api: Api = world.api("root")
    answer = api.put(f"{kind}/bad-one", body)
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert error["code"] == "invalid_request" and error["param"] == param and param in error["message"]
    assert api.get(f"{kind}/bad-one").status_code == 404


def test_what_rules_and_prices_name_cannot_be_deleted_under_them(world: World) -> None:
    api: Api = world.api("root")
    assert api.put("workspaces/metered", {}).status_code == 201
    assert api.put("models/metered", {**DOCS["models"], "workspace": "metered"}).status_code == 201
    rule = {"when": {"principals": {"not_in": ["identity:developers"]}, "workspaces": {"in": ["metered"]}},
            "limits": [{"tokens": 1000, "per": "hour"}], "mode": "audit"}
    assert api.put("rate-limits/metered-rule", rule).status_code == 201
    assert api.put("prices/metered", {"input": 1, "output": 2}).status_code == 201
    for path, named in (("models/metered", "price metered"),
                        ("workspaces/metered", "rate limit metered-rule"),
                        ("external-identities/developers", "rate limit metered-rule")):
        in_use = api.delete(path)
        assert in_use.status_code == 409 and named in in_use.json()["error"]["message"], in_use.text
        assert api.get(path).status_code == 200
    assert api.delete("prices/metered").status_code == 204
    assert api.delete("rate-limits/metered-rule").status_code == 204
    assert api.delete("models/metered").status_code == 204
    assert api.delete("workspaces/metered").status_code == 204


def test_body_that_is_not_json_or_an_invalid_name(world: World) -> None:
    api: Api = world.api("root")
    raw = api.client.put(api.url + "/manage/models/x", data=b"{not json",
                         headers={"content-type": "application/json"})
    assert raw.status_code == 400 and raw.json()["error"]["code"] == "invalid_request"
    bad = api.put("models/bad_name!", DOCS["models"])
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "name"


def test_requests_without_a_valid_token_are_refused(world: World) -> None:
    import requests

    anonymous = requests.get(world.url + "/manage/models", timeout=30)
    assert anonymous.status_code == 401 and anonymous.json()["error"]["code"] == "missing_token"
    forged = requests.get(world.url + "/manage/models", headers={"Authorization": "Bearer abc.def.ghi"},
                          timeout=30)
    assert forged.status_code == 401 and forged.json()["error"]["code"] == "invalid_token"


def test_deleting_a_model_takes_its_bindings_and_referenced_things_cannot_go(world: World) -> None:
    api: Api = world.api("root")
    assert api.put("models/doomed", DOCS["models"]).status_code == 201
    for who in ("user:dev/a", "identity:developers"):
        grant = api.put("collaborators", {"resource": "model:doomed", "principal": who, "role": "viewer"})
        assert grant.status_code == 201, grant.text
    assert len(api.get("collaborators", params={"resource": "model:doomed"}).json()["items"]) == 2
    assert api.delete("models/doomed").status_code == 204
    assert api.get("collaborators", params={"resource": "model:doomed"}).json()["items"] == []
    # re-created, it does not inherit the old grants
    assert api.put("models/doomed", DOCS["models"]).status_code == 201
    assert api.get("collaborators", params={"resource": "model:doomed"}).json()["items"] == []

    in_use = api.delete("accounts/emulator")
    assert in_use.status_code == 409 and "model" in in_use.json()["error"]["message"]
    assert api.get("accounts/emulator").status_code == 200


def test_collaborators_crud_filters_and_etags(world: World) -> None:
    api: Api = world.api("root")
    principal = "user:dev/weird/id:with|chars#ü"
    binding = {"resource": "model:embed", "principal": principal, "role": "viewer"}
    first = api.put("collaborators", binding)
    assert first.status_code == 201 and first.json() == binding
    again = api.put("collaborators", {**binding, "role": "editor"},
                    headers={"If-Match": first.headers["ETag"]})
    assert again.status_code == 200 and again.json()["role"] == "editor"
    assert api.put("collaborators", binding, headers={"If-Match": first.headers["ETag"]}).status_code == 412
    mine = api.get("collaborators", params={"principal": principal}).json()["items"]
    assert mine == [{**binding, "role": "editor"}]
    assert {"resource": "model:gpt-4o", "principal": "identity:developers", "role": "viewer"} in \
        api.get("collaborators").json()["items"]
    for body, param in (({**binding, "role": "owner"}, "role"),
                        ({**binding, "resource": "model:ghost"}, "resource"),
                        ({**binding, "principal": "bob"}, "principal"),
                        ({**binding, "resource": "model:embed", "role": "admin"}, "role")):
        bad = api.put("collaborators", body)
        assert bad.status_code == 400 and bad.json()["error"]["param"] == param, bad.text
    assert api.delete("collaborators", {"resource": "model:embed", "principal": principal,
                                        "role": "viewer"}).status_code == 404   # role differs
    assert api.delete("collaborators", {"resource": "model:embed", "principal": principal}).status_code == 204
    assert api.get("collaborators", params={"principal": principal}).json()["items"] == []


def test_every_change_is_audited_with_who_what_before_and_after(world: World) -> None:
    api: Api = world.api("root")
    assert api.put("workspaces/audited", {}).status_code == 201
    assert api.delete("workspaces/audited").status_code == 204
    budget = {"name": "audited-budget", "usd": {"month": 10}}
    assert api.put("budgets/audited-budget", budget).status_code == 201
    assert api.put("budgets/audited-budget", {**budget, "usd": {"month": 20}}).status_code == 200
    trail = [e for e in api.get("audit", params={"since": "10m"}).json()["items"]
             if (e["kind"], e["key"]) == ("budgets", "audited-budget")]
    assert [(e["action"], e["actor"], e["before"], e["after"]) for e in trail] == [
        ("create", ROOT_ADMIN, None, budget),
        ("update", ROOT_ADMIN, budget, {**budget, "usd": {"month": 20}})]
    result = cli(world.env, "audit", "--json", "--since", "10m")
    assert result.returncode == 0, result.stderr
    entries = json.loads(result.stdout)
    mine = [e for e in entries if e["key"] == "audited"]
    assert [(e["action"], e["actor"], e["kind"]) for e in mine] == [
        ("create", ROOT_ADMIN, "workspaces"), ("delete", ROOT_ADMIN, "workspaces")]
    assert mine[0]["before"] is None and mine[0]["after"] == {"name": "audited"}
    assert mine[1]["before"] == {"name": "audited"} and mine[1]["after"] is None
    text = cli(world.env, "audit").stdout
    assert [ROOT_ADMIN, "create", "workspaces", "audited"] in [line.split()[1:] for line in text.splitlines()]
    later = cli(world.env, "audit", "--since", "2999-01-01")
    assert later.stdout.strip() == "no changes recorded since then"
    assert cli(world.env, "audit", "--since", "yesterday-ish").returncode == 2


def test_status_explain_and_openapi(world: World, idp: DevIdentityProvider) -> None:
    api: Api = world.api("root")
    status = api.get("status")
    assert status.status_code == 200 and "dev" in status.json()["identity_providers"]
    token = idp.mint("alice", claims={"groups": ["developers"]}, audience="api://ai-gateway")
    explained = api.post("explain", {"token": token, "resource": "model:gpt-4o"})
    assert explained.status_code == 200, explained.text
    report = explained.json()
    assert report["allowed"] is True and report["role"] == "viewer"
    assert report["principal"] == "user:dev/alice"
    assert token not in explained.text
    assert api.post("explain", {"resource": "model:gpt-4o"}).json()["error"]["param"] == "token"
    doc = api.client.get(api.url + "/manage/openapi.json").json()
    assert doc["openapi"].startswith("3.") and "/manage/models/{name}" in doc["paths"]
    assert token not in world.logs()


def test_two_writers_racing_on_one_entity(world: World) -> None:
    api: Api = world.api("root")
    created = api.put("models/raced", DOCS["models"])
    etag = created.headers["ETag"]
    barrier = threading.Barrier(2)
    results: dict[str, Any] = {}

    def write(deployment: str) -> None:
        barrier.wait()
        results[deployment] = api.put("models/raced", {"targets": [{"account": "emulator",
                                                                    "deployment": deployment}]},
                                      headers={"If-Match": etag})

    threads = [threading.Thread(target=write, args=(d,)) for d in ("left", "right")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    codes = sorted(r.status_code for r in results.values())
    assert codes == [200, 412], {k: r.text for k, r in results.items()}
    winner = next(d for d, r in results.items() if r.status_code == 200)
    loser = next(d for d, r in results.items() if r.status_code == 412)
    assert api.get("models/raced").json()["targets"][0]["deployment"] == winner
    # the loser re-reads and retries: nothing is lost
    fresh = api.get("models/raced")
    retried = api.put("models/raced", {"targets": [*fresh.json()["targets"],
                                                   {"account": "emulator", "deployment": loser}]},
                      headers={"If-Match": fresh.headers["ETag"]})
    assert retried.status_code == 200
    assert [t["deployment"] for t in api.get("models/raced").json()["targets"]] == [winner, loser]


def test_a_role_on_a_workspace_applies_to_its_resources(world: World) -> None:
    admin: Api = world.api("root")
    assert admin.put("workspaces/lab", {}).status_code == 201
    assert admin.put("models/in-lab", {**DOCS["models"], "workspace": "lab"}).status_code == 201
    assert admin.put("collaborators", {"resource": "workspace:lab", "principal": "user:dev/wendy",
                                       "role": "editor"}).status_code == 201
    wendy = world.api("wendy")
    assert wait_until(lambda: wendy.get("models/in-lab").status_code == 200)   # within the refresh interval
    assert [m["name"] for m in wendy.get("models").json()["items"]] == ["in-lab"]
    changed = wendy.put("models/in-lab", {**DOCS["models"], "workspace": "lab",
                                          "targets": [{"account": "emulator", "deployment": "d9"}]})
    assert changed.status_code == 200, changed.text
    refused = wendy.put("models/lab-new", {**DOCS["models"], "workspace": "lab"})   # no role on the account
    assert refused.status_code == 400 and refused.json()["error"]["param"] == "targets[0].account"
    assert admin.put("collaborators", {"resource": "account:emulator", "principal": "user:dev/wendy",
                                       "role": "viewer"}).status_code == 201
    assert wait_until(lambda: wendy.get("accounts/emulator").status_code == 200)
    created = wendy.put("models/lab-new", {**DOCS["models"], "workspace": "lab"})
    assert created.status_code == 201, created.text
    assert wendy.put("models/elsewhere", DOCS["models"]).status_code == 404       # no workspace: admins
    moved = wendy.put("models/in-lab", {**DOCS["models"], "workspace": "research"})
    assert moved.status_code == 403 and "workspace:research" in moved.json()["error"]["message"]
    assert wendy.delete("models/in-lab").status_code == 403                       # editor, not manager
    assert wendy.get("models/gpt-4o").status_code == 404
    assert wendy.get("collaborators", params={"resource": "workspace:lab"}).status_code == 403
