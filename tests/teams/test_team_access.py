"""Teams through a running gateway: a team bound on a model, a workspace and an MCP server gives its
members the role; a member removed loses it within the refresh interval; a team's managers change its
members and nothing else; /manage/teams is a resource like the others; explain names the team."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests

from sandbox.emulator import AzureOpenAIEmulator
from sandbox.idp import DevIdentityProvider
from tests.harness import AUDIENCE, NewWorld, World, sandbox_config
from tests.manage.conftest import ROOT_ADMIN, every_item, wait_until
from tests.mcp.servers import McpUpstream

PARTNERS: dict[str, Any] = {"groups": ["partners"]}
TARGET = [{"account": "emulator", "deployment": "d"}]


def team_config(idp: DevIdentityProvider, emulator: AzureOpenAIEmulator, mcp_url: str) -> dict[str, Any]:
    doc = sandbox_config(idp, emulator)
    doc["external_identities"].append({"name": "partners", "identity_provider": "dev",
                                       "claims": {"groups": "partners"}})
    doc["workspaces"] = [{"name": "lab"}]
    doc["models"] += [{"name": "lab-model", "workspace": "lab", "targets": TARGET},
                      {"name": "short-model", "targets": TARGET}]
    doc["mcp_servers"] = [{"name": "docs", "url": mcp_url}]
    doc["teams"] = [
        {"name": "partner-eng", "members": ["identity:partners", "user:dev/pat"]},
        {"name": "ops", "members": ["user:dev/olga"]},
        {"name": "admins", "members": ["user:dev/ada"]},
        {"name": "short", "members": ["user:dev/sam", "user:dev/tim"]},
    ]
    doc["collaborators"] += [
        {"resource": "model:gpt-4o", "principal": "team:partner-eng", "role": "viewer"},
        {"resource": "mcp-server:docs", "principal": "team:partner-eng", "role": "viewer"},
        {"resource": "workspace:lab", "principal": "team:ops", "role": "viewer"},
        {"resource": "model:short-model", "principal": "team:short", "role": "viewer"},
        {"resource": "gateway:default", "principal": "team:admins", "role": "admin"},
        # mia manages the partner team (and, in name, the admin team); ed only edits the partner team
        {"resource": "team:partner-eng", "principal": "user:dev/mia", "role": "manager"},
        {"resource": "team:short", "principal": "user:dev/mia", "role": "manager"},
        {"resource": "team:admins", "principal": "user:dev/mia", "role": "manager"},
        {"resource": "team:partner-eng", "principal": "user:dev/ed", "role": "editor"},
        {"resource": "model:embed", "principal": "user:dev/mia", "role": "manager"},
    ]
    return doc


@pytest.fixture(scope="module")
def world(new_world: NewWorld, idp: DevIdentityProvider, emulator: AzureOpenAIEmulator) -> Iterator[World]:
    upstream = McpUpstream("json", issuer="https://gateway.example").start()
    try:
        with new_world(config=team_config(idp, emulator, upstream.url),
                       env={"GATEWAY_ADMINS": ROOT_ADMIN}, upstreams={"docs": upstream}) as world:
            yield world
    finally:
        upstream.stop()


def bearer(world: World, sub: str, claims: dict[str, Any] | None = None) -> dict[str, str]:
    return {"Authorization": f"Bearer {world.idp.mint(sub, claims=claims, audience=AUDIENCE)}"}


def chat(world: World, sub: str, model: str, claims: dict[str, Any] | None = None) -> int:
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}]}
    return requests.post(f"{world.url}/v1/chat/completions", json=body, headers=bearer(world, sub, claims),
                         timeout=30).status_code


def list_tools(world: World, sub: str, claims: dict[str, Any] | None = None) -> int:
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list",
            "params": {"_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                                 "io.modelcontextprotocol/clientCapabilities": {}}}}
    headers = {**bearer(world, sub, claims), "Accept": "application/json, text/event-stream",
               "MCP-Protocol-Version": "2026-07-28", "Mcp-Method": "tools/list"}
    return requests.post(f"{world.url}/mcp/docs", json=body, headers=headers, timeout=30).status_code


@pytest.mark.parametrize(("sub", "claims", "target", "status"), [
    ("pat", None, "model:gpt-4o", 200),              # listed as a user
    ("quinn", PARTNERS, "model:gpt-4o", 200),        # listed through an external identity
    ("quinn", None, "model:gpt-4o", 404),            # the same user without the identity's claim
    ("olga", None, "model:gpt-4o", 404),             # another team's member
    ("olga", None, "model:lab-model", 200),          # her team is viewer on the model's workspace
    ("pat", None, "model:lab-model", 404),
    ("mia", None, "model:gpt-4o", 404),              # managing a team is not being in it
    ("pat", None, "mcp-server:docs", 200),
    ("quinn", PARTNERS, "mcp-server:docs", 200),
    ("olga", None, "mcp-server:docs", 404),
])
def test_a_team_binding_reaches_its_members(world: World, sub: str, claims: dict[str, Any] | None,
                                            target: str, status: int) -> None:
    kind, _, name = target.partition(":")
    got = chat(world, sub, name, claims) if kind == "model" else list_tools(world, sub, claims)
    assert got == status


def test_removing_a_member_revokes_within_the_refresh_interval(world: World) -> None:
    assert chat(world, "sam", "short-model") == 200 and chat(world, "tim", "short-model") == 200
    mia = world.api("mia")
    found = mia.get("teams/short")
    assert found.status_code == 200, found.text
    changed = mia.put("teams/short", {"members": ["user:dev/tim"]},
                      headers={"If-Match": found.headers["ETag"]})
    assert changed.status_code == 200, changed.text
    assert wait_until(lambda: chat(world, "sam", "short-model") == 404, seconds=5)   # refresh is 0.5 s
    assert chat(world, "tim", "short-model") == 200


@pytest.mark.parametrize(("sub", "call", "status"), [
    # mia manages team:partner-eng: she changes its members, and nothing beyond
    ("mia", lambda api: api.put("teams/partner-eng", {"members": ["identity:partners", "user:dev/pat",
                                                                  "user:dev/neo"]}), 200),
    ("ed", lambda api: api.put("teams/partner-eng", {"members": ["user:dev/ed"]}), 403),   # editor only
    ("pat", lambda api: api.put("teams/partner-eng", {"members": ["user:dev/pat"]}), 404),  # a member
    ("mia", lambda api: api.put("teams/admins", {"members": ["user:dev/ada", "user:dev/mia"]}), 403),
    ("mia", lambda api: api.delete("teams/partner-eng"), 403),
    ("mia", lambda api: api.put("teams/mias-own", {"members": ["user:dev/mia"]}), 404),
    ("mia", lambda api: api.put("collaborators", {"resource": "model:secret-model",
                                                  "principal": "team:partner-eng", "role": "viewer"}), 404),
    ("mia", lambda api: api.put("collaborators", {"resource": "model:gpt-4o",
                                                  "principal": "user:dev/mia", "role": "manager"}), 404),
    ("mia", lambda api: api.put("collaborators", {"resource": "gateway:default",
                                                  "principal": "team:partner-eng", "role": "admin"}), 403),
    # on a resource she does manage, binding her team is hers to decide
    ("mia", lambda api: api.put("collaborators", {"resource": "model:embed",
                                                  "principal": "team:partner-eng", "role": "viewer"}), 201),
    # an admin through a team is an admin
    ("ada", lambda api: api.put("teams/admins", {"members": ["user:dev/ada"]}), 200),
    ("ada", lambda api: api.get("status"), 200),
])
def test_a_team_manager_changes_members_and_nothing_else(world: World, sub: str, call: Any,
                                                         status: int) -> None:
    answer = call(world.api(sub))
    assert answer.status_code == status, answer.text


def test_a_team_is_managed_like_other_resources(world: World) -> None:
    root = world.api("root")
    created = root.put("teams/reviewers", {"members": ["user:dev/rita"]}, headers={"If-None-Match": "*"})
    assert created.status_code == 201, created.text
    etag = created.headers["ETag"]
    assert root.get("teams/reviewers").json() == {"name": "reviewers", "members": ["user:dev/rita"]}
    moved = root.put("teams/reviewers", {"members": ["user:dev/rita", "identity:developers"]},
                     headers={"If-Match": etag})
    assert moved.status_code == 200 and moved.json()["members"] == ["identity:developers", "user:dev/rita"]
    stale = root.put("teams/reviewers", {"members": []}, headers={"If-Match": etag})
    assert stale.status_code == 412
    assert "reviewers" in {t["name"] for t in every_item(root, "teams", limit="1")}

    bound = {"resource": "model:embed", "principal": "team:reviewers", "role": "viewer"}
    assert root.put("collaborators", bound).status_code == 201
    refused = root.delete("teams/reviewers")
    assert refused.status_code == 409 and "the role of team:reviewers on model:embed" in refused.text
    assert root.delete("collaborators", bound).status_code == 204
    assert root.delete("teams/reviewers").status_code == 204
    assert root.get("teams/reviewers").status_code == 404


@pytest.mark.parametrize(("body", "field", "words"), [
    ({"members": ["team:ops"]}, "members[0]", "teams do not nest"),
    ({"members": ["identity:nobody"]}, "members", "unknown external identity 'nobody'"),
    ({"members": ["user:nowhere/x"]}, "members", "unknown identity provider 'nowhere'"),
    ({"members": ["user:dev/a", "user:dev/a"]}, "members[1]", "listed twice"),
    ({"members": "user:dev/a"}, "members", "must be a list"),
])
def test_an_invalid_team_is_refused_naming_the_field(world: World, body: dict[str, Any], field: str,
                                                     words: str) -> None:
    answer = world.api("root").put("teams/bad", body)
    assert answer.status_code == 400
    assert answer.json()["error"]["param"] == field and words in answer.json()["error"]["message"]


def test_who_sees_a_team(world: World) -> None:
    """Only those with a role on team:N see it; a member, or a stranger, learns nothing of it."""
    assert {t["name"] for t in every_item(world.api("mia"), "teams")} == {"partner-eng", "short", "admins"}
    assert every_item(world.api("pat"), "teams") == []
    assert world.api("pat").get("teams/partner-eng").status_code == 404
    assert world.api("pat").get("teams/no-such-team").status_code == 404


def test_explain_names_the_team_that_gave_the_role(world: World) -> None:
    token = world.idp.mint("quinn", claims=PARTNERS, audience=AUDIENCE)
    report = world.api("root").post("explain", {"token": token, "resource": "model:gpt-4o"}).json()
    assert report["allowed"] and report["role"] == "viewer" and report["role_via"] == "model:gpt-4o"
    assert (report["role_principal"], report["role_member"]) == ("team:partner-eng", "identity:partners")
    access = next(c for c in report["checks"] if c["check"] == "access")
    assert access["detail"] == "viewer via team:partner-eng (member as identity:partners) on model:gpt-4o"
    assert "team:partner-eng (member as identity:partners)" in report["teams"]
