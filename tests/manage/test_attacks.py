"""How /manage was attacked, one regression test per attack: a real gateway process, Azurite, tokens
from the dev IdP, plain HTTP. Each test asserts what the attacker (or the operator) sees."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from sandbox.azurite import Azurite
from sandbox.emulator import AzureOpenAIEmulator
from sandbox.idp import DevIdentityProvider
from shared.config.store import ConfigStore
from shared.settings import load
from tests.harness import Api, NewWorld, Tables, World, gateway_env, sandbox_config, unique_prefix
from tests.manage.conftest import ROOT_ADMIN, cli, every_item, wait_until

TARGET = {"account": "emulator", "deployment": "d"}
ACCOUNT = {"kind": "azure-openai", "endpoint": "https://x.openai.azure.com",
           "auth": {"type": "managed-identity"}}

# Moving a model between workspaces: (case, from, to, the caller's roles, expected status)
MOVES: list[tuple[str, str | None, str | None, list[tuple[str, str]], int]] = [
    ("editor-carries-it-into-a-workspace-they-manage", None, "w2",
     [("model:M", "editor"), ("workspace:w2", "manager")], 403),
    ("workspace-editor-carries-it-to-a-workspace-they-manage", "w1", "w2",
     [("workspace:w1", "editor"), ("workspace:w2", "manager")], 403),
    ("manager-pushes-it-into-a-workspace-they-only-edit", "w1", "w2",
     [("workspace:w1", "manager"), ("workspace:w2", "editor")], 403),
    ("workspace-editor-takes-it-out", "w1", None, [("workspace:w1", "editor")], 403),
    ("model-manager-takes-it-out-of-a-workspace-they-do-not-manage", "w1", None,
     [("model:M", "manager")], 403),
    ("manager-of-both-workspaces", "w1", "w2",
     [("workspace:w1", "manager"), ("workspace:w2", "manager")], 200),
    ("manager-of-the-model-and-the-workspace", None, "w2",
     [("model:M", "manager"), ("workspace:w2", "manager")], 200),
]


def move_model(case: str) -> str:
    return f"mv-{case}"[:64].rstrip("-")


def move_caller(i: int) -> str:
    return f"mover{i}"


@pytest.fixture(scope="module")
def world(new_world: NewWorld, idp: DevIdentityProvider, emulator: AzureOpenAIEmulator) -> Iterator[World]:
    doc = sandbox_config(idp, emulator, workspaces=[{"name": "w1"}, {"name": "w2"}])
    doc["accounts"] += [{"name": "secret-acct", **ACCOUNT}, {"name": "shared-acct", **ACCOUNT}]
    doc["models"] += [{"name": "retarget-me", "targets": [TARGET]}]
    doc["collaborators"] += [
        {"resource": "model:retarget-me", "principal": "user:dev/eddie", "role": "editor"},
        {"resource": "account:shared-acct", "principal": "user:dev/eddie", "role": "viewer"},
        {"resource": "model:gpt-4o", "principal": "user:dev/mona", "role": "manager"},
    ]
    for i, (case, source, _, roles, _) in enumerate(MOVES):
        name = move_model(case)
        doc["models"].append({"name": name, "targets": [TARGET],
                              **({"workspace": source} if source else {})})
        doc["collaborators"] += [{"resource": f"model:{name}" if r == "model:M" else r,
                                  "principal": f"user:dev/{move_caller(i)}", "role": role}
                                 for r, role in roles]
    with new_world(config=doc, env={"GATEWAY_ADMINS": ROOT_ADMIN}) as world:
        yield world


def error(answer: requests.Response) -> dict[str, Any]:
    return dict(answer.json()["error"])


# -- moving a resource between workspaces -----------------------------------------------------------

@pytest.mark.parametrize(("i", "case"), [(i, m[0]) for i, m in enumerate(MOVES)])
def test_attack_moving_a_model_between_workspaces_needs_manager_on_both(world: World, i: int,
                                                                        case: str) -> None:
    _, source, target, _, expected = MOVES[i]
    name = move_model(case)
    caller: Api = world.api(move_caller(i))
    answer = caller.put(f"models/{name}", {"targets": [TARGET], **({"workspace": target} if target else {})})
    assert answer.status_code == expected, answer.text
    stored = world.api("root").get(f"models/{name}").json()
    assert stored.get("workspace") == (target if expected == 200 else source)
    if expected == 403:
        assert error(answer)["code"] == "permission_denied" and "manager" in error(answer)["message"]


def test_attack_editor_creating_a_model_in_a_workspace_they_do_not_edit_learns_nothing(
        world: World) -> None:
    eddie: Api = world.api("eddie")
    body = {"workspace": "w1", "targets": [{"account": "shared-acct", "deployment": "d"}]}
    taken = eddie.put("models/gpt-4o", body)          # exists, no role on it
    free = eddie.put("models/no-such-model", body)    # does not exist
    assert taken.status_code == free.status_code == 404
    assert taken.text.replace("gpt-4o", "N") == free.text.replace("no-such-model", "N")


# -- pointing a model at an account -----------------------------------------------------------------

def test_attack_editor_retargets_a_model_to_an_account_they_cannot_see(world: World) -> None:
    eddie: Api = world.api("eddie")
    def retarget(account: str) -> requests.Response:
        return eddie.put("models/retarget-me", {"targets": [TARGET, {"account": account, "deployment": "x"}]})

    hidden, missing = retarget("secret-acct"), retarget("ghost-acct")
    assert hidden.status_code == missing.status_code == 400
    assert error(hidden)["param"] == "targets[1].account"
    assert hidden.text.replace("secret-acct", "A") == missing.text.replace("ghost-acct", "A")
    assert world.api("root").get("models/retarget-me").json()["targets"] == [TARGET]
    # the settings of the targets it has may change, and an account it may view may be added
    kept = eddie.put("models/retarget-me", {"targets": [{**TARGET, "deployment": "d2"}]})
    assert kept.status_code == 200, kept.text
    added = eddie.put("models/retarget-me", {"targets": [{**TARGET, "deployment": "d2"},
                                                         {"account": "shared-acct", "deployment": "y"}]})
    assert added.status_code == 200, added.text


@pytest.mark.parametrize(("request_of", "hidden", "missing"), [
    (lambda api, a: api.get(f"accounts/{a}"), "secret-acct", "ghost-acct"),
    (lambda api, a: api.get("collaborators", params={"resource": f"account:{a}"}),
     "secret-acct", "ghost-acct"),
    (lambda api, a: api.put("collaborators", {"resource": f"account:{a}", "principal": "user:dev/eddie",
                                              "role": "viewer"}), "secret-acct", "ghost-acct"),
    (lambda api, a: api.put(f"accounts/{a}", ACCOUNT), "secret-acct", "ghost-acct"),
    (lambda api, a: api.delete(f"accounts/{a}"), "secret-acct", "ghost-acct"),
])
def test_attack_probing_for_accounts_reveals_nothing(world: World, request_of: Callable[..., Any],
                                                     hidden: str, missing: str) -> None:
    mona: Api = world.api("mona")       # a manager of something, no role on any account
    a, b = request_of(mona, hidden), request_of(mona, missing)
    assert a.status_code == b.status_code == 404, a.text
    assert a.text.replace(hidden, "A") == b.text.replace(missing, "A")
    assert [x["name"] for x in every_item(mona, "accounts")] == []


# -- bindings on gateway:default, principals --------------------------------------------------------

@pytest.mark.parametrize(("role", "status", "param"), [("admin", 403, None), ("viewer", 400, "role")])
def test_attack_non_admin_grants_on_the_gateway(world: World, role: str, status: int,
                                                param: str | None) -> None:
    mona: Api = world.api("mona")
    answer = mona.put("collaborators", {"resource": "gateway:default", "principal": "user:dev/mona",
                                        "role": role})
    assert answer.status_code == status and error(answer)["param"] == param, answer.text
    listed = world.api("root").get("collaborators", params={"resource": "gateway:default"}).json()["items"]
    assert all(b["principal"] != "user:dev/mona" for b in listed)


@pytest.mark.parametrize(("principal", "message"), [
    ("user:dve/alice", "unknown identity provider 'dve'"),
    ("identity:developerz", "unknown external identity 'developerz'"),
])
@pytest.mark.parametrize("who", ["admin", "mona"])
def test_attack_binding_a_mistyped_principal_is_refused(world: World, principal: str, message: str,
                                                        who: str) -> None:
    api: Api = world.api("root") if who == "admin" else world.api("mona")
    answer = api.put("collaborators", {"resource": "model:gpt-4o", "principal": principal, "role": "viewer"})
    assert answer.status_code == 400 and error(answer)["param"] == "principal", answer.text
    assert message in error(answer)["message"]
    assert world.api("root").get("collaborators", params={"principal": principal}).json()["items"] == []


def test_deleting_an_identity_provider_that_bindings_name_is_refused(world: World) -> None:
    admin: Api = world.api("root")
    provider = {"jwks_uri": "https://other.example.com/keys"}
    assert admin.put("identity-providers/other", provider).status_code == 201
    assert admin.put("collaborators", {"resource": "model:gpt-4o", "principal": "user:other/x",
                                       "role": "viewer"}).status_code == 201
    refused = admin.delete("identity-providers/other")
    assert refused.status_code == 409 and "user:other/x" in error(refused)["message"]
    revoked = admin.delete("collaborators", {"resource": "model:gpt-4o", "principal": "user:other/x"})
    assert revoked.status_code == 204
    assert admin.delete("identity-providers/other").status_code == 204


# -- the last admin ---------------------------------------------------------------------------------

def test_attack_removing_the_last_admin_is_refused(tables: Tables, idp: DevIdentityProvider,
                                                   emulator: AzureOpenAIEmulator, start_gateway: Any,
                                                   tmp_path: Path) -> None:
    doc = sandbox_config(idp, emulator)
    doc["collaborators"].append({"resource": "gateway:default", "principal": "user:dev/boss",
                                 "role": "admin"})
    tables.apply(doc)
    env = gateway_env(tables)                       # GATEWAY_ADMINS names no one
    gw = start_gateway(env)
    boss = Api(gw.url, idp, "boss")
    binding = {"resource": "gateway:default", "principal": "user:dev/boss"}

    deleted = boss.delete("collaborators", binding)
    assert deleted.status_code == 409 and error(deleted)["code"] == "conflict", deleted.text
    assert "last admin" in error(deleted)["message"]
    downgraded = boss.put("collaborators", {**binding, "role": "viewer"})
    assert downgraded.status_code == 400 and error(downgraded)["param"] == "role"

    path = tmp_path / "gateway.json"
    assert cli(env, "export", "-o", str(path)).returncode == 0
    exported = json.loads(path.read_text())
    exported["collaborators"] = [c for c in exported["collaborators"] if c["resource"] != "gateway:default"]
    path.write_text(json.dumps(exported))
    applied = cli(env, "apply", "-f", str(path), "--prune")
    assert applied.returncode == 2 and "last admin" in applied.stderr, applied.stdout + applied.stderr
    assert boss.get("collaborators", params={"resource": "gateway:default"}).json()["items"] == [
        {**binding, "role": "admin"}]

    # two admins removing each other at once: one wins, one is refused, one admin is left
    assert boss.put("collaborators", {"resource": "gateway:default", "principal": "user:dev/deputy",
                                      "role": "admin"}).status_code == 201
    deputy = Api(gw.url, idp, "deputy")
    assert wait_until(lambda: deputy.get("status").status_code == 200)
    results: dict[str, int] = {}
    barrier = threading.Barrier(2)

    def remove(api: Api, victim: str) -> None:
        barrier.wait()
        results[victim] = api.delete("collaborators", {"resource": "gateway:default",
                                                       "principal": f"user:dev/{victim}"}).status_code

    threads = [threading.Thread(target=remove, args=a) for a in ((boss, "deputy"), (deputy, "boss"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results.values()) == [204, 409], results
    left = tables.load().collaborators
    assert [c.role for c in left if c.resource == "gateway:default"] == ["admin"]

    # with a principal in GATEWAY_ADMINS the operator may drop every admin binding
    assert cli({**env, "GATEWAY_ADMINS": ROOT_ADMIN}, "apply", "-f", str(path), "--prune").returncode == 0
    assert [c for c in tables.load().collaborators if c.resource == "gateway:default"] == []


# -- racing a grant against a delete ----------------------------------------------------------------

def orphans(tables: Tables) -> list[str]:
    config = tables.load()
    names = {f"model:{m.name}" for m in config.models}
    return sorted({c.resource for c in config.collaborators if c.resource.startswith("model:race-")} - names)


def test_attack_racing_a_grant_against_a_delete_leaves_no_orphan(world: World) -> None:
    admin: Api = world.api("root")
    outcomes: dict[tuple[int, int], int] = {}
    for i in range(50):
        name = f"race-{i}"
        assert admin.put(f"models/{name}", {"targets": [TARGET]}).status_code == 201
        barrier = threading.Barrier(2)
        answers: dict[str, int] = {}

        def delete(name: str = name, answers: dict[str, int] = answers, barrier: Any = barrier) -> None:
            barrier.wait()
            answers["delete"] = admin.delete(f"models/{name}").status_code

        def grant(name: str = name, answers: dict[str, int] = answers, barrier: Any = barrier) -> None:
            barrier.wait()
            answers["grant"] = admin.put("collaborators", {"resource": f"model:{name}",
                                                           "principal": "user:dev/racer",
                                                           "role": "viewer"}).status_code

        threads = [threading.Thread(target=delete), threading.Thread(target=grant)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert answers["delete"] == 204 and answers["grant"] in (201, 400, 409), answers
        pair = (answers["delete"], answers["grant"])
        outcomes[pair] = outcomes.get(pair, 0) + 1
    assert orphans(world.tables) == [], outcomes


def test_concurrent_unconditional_grants_on_one_resource_all_land(world: World) -> None:
    admin: Api = world.api("root")
    assert admin.put("models/crowded", {"targets": [TARGET]}).status_code == 201
    barrier = threading.Barrier(20)
    codes: list[int] = []

    def grant(i: int) -> None:
        barrier.wait()
        codes.append(admin.put("collaborators", {"resource": "model:crowded", "principal": f"user:dev/c{i}",
                                                 "role": "viewer"}).status_code)

    threads = [threading.Thread(target=grant, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(codes) == [201] * 20, codes
    listed = every_item(admin, "collaborators", resource="model:crowded")
    assert sorted(b["principal"] for b in listed) == sorted(f"user:dev/c{i}" for i in range(20))


def test_the_store_itself_leaves_no_orphan_when_a_grant_races_a_delete(world: World) -> None:
    """The same race straight on ConfigStore (asyncio tasks), where `apply` would run it."""
    from shared.config.entities import Write, collaborator_key

    async def race(store: ConfigStore, i: int) -> None:
        name = f"race-store-{i}"
        await store.write([Write("models", name, {"name": name, "targets": [TARGET]})])
        grant = Write("collaborators", collaborator_key(f"model:{name}", "user:dev/racer"),
                      {"resource": f"model:{name}", "principal": "user:dev/racer", "role": "viewer"})
        await asyncio.gather(store.write([Write("models", name, None)]), store.write([grant]),
                             return_exceptions=True)

    async def run() -> list[str]:
        store = ConfigStore.from_settings(load(world.tables.env))
        try:
            for i in range(50):
                await race(store, i)
            config, _ = await store.load()
        finally:
            await store.aclose()
        names = {f"model:{m.name}" for m in config.models}
        return sorted({c.resource for c in config.collaborators if c.resource.startswith("model:race-store-")}
                      - names)

    assert asyncio.run(run()) == []


# -- bounded lists ----------------------------------------------------------------------------------

@pytest.mark.parametrize("limit", ["0", "1001", "-1", "abc", "1.5", "", "99999999999999999999"])
@pytest.mark.parametrize("path", ["models", "collaborators", "audit", "accounts"])
def test_attack_unbounded_list_limit_is_refused(world: World, path: str, limit: str) -> None:
    answer = world.api("root").get(path, params={"limit": limit})
    assert answer.status_code == 400 and error(answer)["param"] == "limit", answer.text


def test_attack_tampered_or_foreign_cursor_is_refused(world: World) -> None:
    admin: Api = world.api("root")
    first = admin.get("models", params={"limit": "1"}).json()
    cursor = first["next_cursor"]
    assert len(first["items"]) == 1 and cursor
    payload, digest = cursor.split(".")
    forged = ("A" if payload[0] != "A" else "B") + payload[1:] + "." + digest
    for path, params in (("models", {"cursor": forged}), ("models", {"cursor": "garbage"}),
                         ("workspaces", {"cursor": cursor}),
                         ("collaborators", {"cursor": cursor, "resource": "model:gpt-4o"})):
        answer = admin.get(path, params=params)
        assert answer.status_code == 400 and error(answer)["param"] == "cursor", (path, answer.text)


@pytest.mark.parametrize(("path", "params", "key"), [
    ("models", {}, lambda item: item["name"]),
    ("collaborators", {}, lambda item: (item["resource"], item["principal"])),
    ("collaborators", {"resource": "model:paged"}, lambda item: item["principal"]),
    ("collaborators", {"principal": "user:dev/p3"}, lambda item: item["resource"]),
    ("audit", {"resource": "model:paged"}, lambda item: (item["change_set"], item["key"])),
])
def test_small_pages_walk_the_whole_list_once(world: World, path: str, params: dict[str, str],
                                              key: Callable[[dict[str, Any]], Any]) -> None:
    admin: Api = world.api("root")
    if admin.get("models/paged").status_code == 404:
        assert admin.put("models/paged", {"targets": [TARGET]}).status_code == 201
        for i in range(7):
            assert admin.put("collaborators", {"resource": "model:paged", "principal": f"user:dev/p{i}",
                                               "role": "viewer"}).status_code == 201
    whole = admin.get(path, params={**params, "limit": "1000"}).json()
    assert whole["next_cursor"] is None and whole["items"]
    walked = every_item(admin, path, **params, limit="3")
    assert [key(i) for i in walked] == [key(i) for i in whole["items"]]
    assert len({json.dumps(key(i)) for i in walked}) == len(walked)


def test_attack_listing_with_no_role_reads_no_storage(idp: DevIdentityProvider, emulator: AzureOpenAIEmulator,
                                                      start_gateway: Any, tmp_path: Path) -> None:
    """With storage gone, an admin's list fails, and a caller with no role still gets an empty list at
    once: the answer was decided from the snapshot, with no table read (nor scan)."""
    private = Azurite(tmp_path / "azurite").start()
    try:
        tables = Tables(private, unique_prefix())
        tables.apply(sandbox_config(idp, emulator))
        gw = start_gateway(gateway_env(tables, GATEWAY_ADMINS=ROOT_ADMIN))
        admin, nobody = Api(gw.url, idp, "root"), Api(gw.url, idp, "nobody")
        assert admin.get("models").status_code == 200
        assert nobody.get("models").json() == {"items": [], "next_cursor": None}
    finally:
        private.stop()
    for path in ("models", "mcp-servers", "workspaces", "accounts", "collaborators"):
        answer = nobody.get(path)
        assert answer.status_code == 200 and answer.json() == {"items": [], "next_cursor": None}, answer.text
    down = admin.get("models")
    assert down.status_code == 503 and error(down)["code"] == "unavailable"


# -- the audit trail over HTTP ----------------------------------------------------------------------

def test_the_audit_trail_is_read_over_http_by_admins_only(world: World) -> None:
    admin: Api = world.api("root")
    assert admin.put("workspaces/audited-ws", {}).status_code == 201
    assert admin.put("collaborators", {"resource": "workspace:audited-ws", "principal": "user:dev/aud",
                                       "role": "viewer"}).status_code == 201
    assert admin.delete("workspaces/audited-ws").status_code == 204      # takes the binding with it
    trail = every_item(admin, "audit", resource="workspace:audited-ws", since="10m")
    assert [(e["action"], e["kind"], e["actor"]) for e in trail] == [
        ("create", "workspaces", ROOT_ADMIN), ("create", "collaborators", ROOT_ADMIN),
        ("delete", "workspaces", ROOT_ADMIN), ("delete", "collaborators", ROOT_ADMIN)]
    about = every_item(admin, "audit", principal="user:dev/aud")
    assert {e["action"] for e in about} == {"create", "delete"}
    assert world.api("mona").get("audit").status_code == 403
    bad = admin.get("audit", params={"since": "yesterday-ish"})
    assert bad.status_code == 400 and error(bad)["param"] == "since"
