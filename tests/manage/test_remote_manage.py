"""/manage for MCP servers and agents against a real gateway process on Azurite: the fields that decide
where the gateway sends credentials are an admin's alone, and the remote-call report shows each caller
only the calls of what they manage, never argument values."""

from __future__ import annotations

import asyncio
import copy
import time
from collections.abc import Iterator
from typing import Any

import pytest

from sandbox.emulator import AzureOpenAIEmulator
from sandbox.idp import DevIdentityProvider
from shared.remote.audit import RemoteCall, args_hash
from shared.remote.audit_store import AuditStore
from tests.harness import Api, NewWorld, World, sandbox_config
from tests.manage.conftest import ROOT_ADMIN, cli, every_item

GITHUB = {"name": "github", "workspace": "w1", "url": "http://127.0.0.1:9/mcp",
          "auth": {"type": "identity-assertion"}, "tools": {"allow": ["search_*"]}}
JIRA = {"name": "jira", "url": "http://127.0.0.1:9/jira"}
TRIAGE = {"name": "triage", "url": "http://127.0.0.1:9/a2a", "card_url": "http://127.0.0.1:9/card.json"}
CALLS = [  # (kind, target, principal, tool, outcome, latency)
    ("mcp", "github", "user:dev/alice", "search_code", "ok", 10.0),
    ("mcp", "github", "user:dev/alice", "search_code", "ok", 30.0),
    ("mcp", "github", "user:dev/bob", "search_issues", "error", 20.0),
    ("mcp", "jira", "user:dev/alice", "get_issue", "timeout", 200.0),
    ("agent", "triage", "user:dev/bob", None, "ok", 50.0),
]


@pytest.fixture(scope="module")
def world(new_world: NewWorld, idp: DevIdentityProvider, emulator: AzureOpenAIEmulator) -> Iterator[World]:
    doc = sandbox_config(idp, emulator, workspaces=[{"name": "w1"}], mcp_servers=[GITHUB, JIRA],
                         agents=[TRIAGE])
    doc["collaborators"] += [
        {"resource": "mcp-server:github", "principal": "user:dev/eddie", "role": "editor"},
        {"resource": "agent:triage", "principal": "user:dev/eddie", "role": "editor"},
        {"resource": "workspace:w1", "principal": "user:dev/wendy", "role": "editor"},
        {"resource": "mcp-server:github", "principal": "user:dev/mona", "role": "manager"},
        {"resource": "agent:triage", "principal": "user:dev/agnes", "role": "manager"},
    ]
    with new_world(config=doc, env={"GATEWAY_ADMINS": ROOT_ADMIN}) as world:
        _record_calls(world)
        yield world


def _record_calls(world: World) -> None:
    """The calls as the gateway's own audit store writes them, into this world's table."""
    async def go() -> None:
        from azure.data.tables.aio import TableServiceClient

        service = TableServiceClient.from_connection_string(world.env["GATEWAY_TABLES_CONNECTION"])
        store = AuditStore(service, world.tables.prefix)
        now = time.time()
        for i, (kind, target, principal, tool, outcome, latency) in enumerate(CALLS):
            store(RemoteCall(kind=kind, target=target, principal=principal,
                             method="tools/call" if kind == "mcp" else "SendMessage", outcome=outcome,
                             status=200, latency_ms=latency, request_id=f"req-{i}", tool=tool,
                             args_hash=args_hash({"q": f"private words {i}"}), at=now - 60 + i))
        assert await store.flush()
        await service.close()

    asyncio.run(go())


def error(answer: Any) -> dict[str, Any]:
    return dict(answer.json()["error"])


# -- the admin-only fields --------------------------------------------------------------------------

def _changed(doc: dict[str, Any], field: str, value: Any) -> dict[str, Any]:
    out = copy.deepcopy(doc)
    out.pop("name", None)
    out[field] = value
    return out


ATTACKS = [  # (case, path, base document, field, value)
    ("points-the-server-at-their-host", "mcp-servers/github", GITHUB, "url", "http://127.0.0.1:8/mcp"),
    ("sends-assertions-elsewhere-by-changing-auth", "mcp-servers/github", GITHUB, "auth",
     {"type": "headers", "headers_env": {"X-Key": "GATEWAY_SECRET_EMULATOR_KEY"}}),
    ("opens-the-private-network", "mcp-servers/github", GITHUB, "allow_private_network", True),
    ("points-the-agent-at-their-host", "agents/triage", TRIAGE, "url", "http://127.0.0.1:8/a2a"),
    ("moves-the-agent-card", "agents/triage", TRIAGE, "card_url", "http://127.0.0.1:8/card.json"),
    ("drops-the-agent-auth", "agents/triage", TRIAGE, "auth", {"type": "entra", "scope": "api://x/.default"}),
]


@pytest.mark.parametrize(("case", "path", "base", "field", "value"), ATTACKS, ids=[a[0] for a in ATTACKS])
def test_attack_editor_redirects_the_gateways_credentials(world: World, case: str, path: str,
                                                          base: dict[str, Any], field: str,
                                                          value: Any) -> None:
    eddie: Api = world.api("eddie")
    before = world.api("root").get(path).json()
    answer = eddie.put(path, _changed(before, field, value))
    assert answer.status_code == 403, answer.text
    assert error(answer)["code"] == "permission_denied" and error(answer)["param"] == field
    assert "only gateway admins" in error(answer)["message"]
    assert world.api("root").get(path).json() == before


def test_attack_workspace_editor_creates_a_server_pointing_at_their_host(world: World) -> None:
    wendy: Api = world.api("wendy")
    answer = wendy.put("mcp-servers/mine", {"workspace": "w1", "url": "http://127.0.0.1:8/mcp"})
    assert answer.status_code == 403 and error(answer)["param"] == "url", answer.text
    assert world.api("root").get("mcp-servers/mine").status_code == 404


@pytest.mark.parametrize(("path", "field", "value"), [
    ("mcp-servers/github", "tools", {"allow": ["search_*", "get_*"], "deny": ["get_secret"]}),
    ("mcp-servers/github", "timeout_s", 30),
    ("agents/triage", "timeout_s", 45),
])
def test_editors_change_tools_and_timeouts(world: World, path: str, field: str, value: Any) -> None:
    eddie: Api = world.api("eddie")
    before = eddie.get(path).json()
    answer = eddie.put(path, _changed(before, field, value))
    assert answer.status_code == 200, answer.text
    assert world.api("root").get(path).json()[field] == value


def test_admins_change_where_a_server_points(world: World) -> None:
    root: Api = world.api("root")
    answer = root.put("mcp-servers/jira", {"url": "http://127.0.0.1:9/jira2", "auth": {"type": "none"},
                                           "allow_private_network": True})
    assert answer.status_code == 200, answer.text
    assert root.get("mcp-servers/jira").json()["url"] == "http://127.0.0.1:9/jira2"
    assert root.put("mcp-servers/jira", JIRA).status_code == 200


def test_the_openapi_document_describes_the_new_fields(world: World) -> None:
    schemas = world.api("root").get("openapi.json").json()["components"]["schemas"]
    assert {"auth", "tools", "timeout_s", "allow_private_network"} <= set(schemas["McpServers"]["properties"])
    assert {"auth", "card_url", "timeout_s", "allow_private_network"} <= set(schemas["Agents"]["properties"])


# -- the remote-call report -------------------------------------------------------------------------

def test_admins_see_every_call_grouped_by_target(world: World) -> None:
    answer = world.api("root").get("remote-calls", params={"group_by": "target"})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["all_calls"] is True and body["truncated"] is False
    rows = {(r["kind"], r["target"]): r for r in body["data"]}
    assert set(rows) == {("mcp", "github"), ("mcp", "jira"), ("agent", "triage")}
    github = rows[("mcp", "github")]
    assert (github["calls"], github["ok"], github["error"], github["p50_ms"], github["p95_ms"]) == \
        (3, 2, 1, 20.0, 30.0)
    assert rows[("mcp", "jira")]["timeout"] == 1


@pytest.mark.parametrize(("group_by", "expected"), [
    ("user", [("user:dev/alice", 3), ("user:dev/bob", 2)]),
    ("tool", [("SendMessage", 1), ("get_issue", 1), ("search_code", 2), ("search_issues", 1)]),
])
def test_calls_grouped_by_user_and_tool(world: World, group_by: str, expected: list[tuple[str, int]]) -> None:
    body = world.api("root").get("remote-calls", params={"group_by": group_by}).json()
    key = "principal" if group_by == "user" else group_by
    assert [(r[key], r["calls"]) for r in body["data"]] == expected


@pytest.mark.parametrize(("who", "seen"), [
    ("mona", {"req-0", "req-1", "req-2"}),      # manager of mcp-server:github
    ("agnes", {"req-4"}),                       # manager of agent:triage
    ("eddie", set()),                           # an editor manages nothing
    ("stranger", set()),
])
def test_attack_reading_the_calls_of_servers_one_does_not_manage(world: World, who: str,
                                                                  seen: set[str]) -> None:
    api: Api = world.api(who)
    records = every_item(api, "remote-calls", limit="2")
    assert {r["request_id"] for r in records} == seen
    grouped = api.get("remote-calls", params={"group_by": "target"}).json()
    assert grouped["all_calls"] is False
    assert sum(r["calls"] for r in grouped["data"]) == len(seen)


def test_attack_probing_for_a_target_one_does_not_manage_reveals_nothing(world: World) -> None:
    mona: Api = world.api("mona")
    hidden = mona.get("remote-calls", params={"target": "jira"})
    missing = mona.get("remote-calls", params={"target": "ghost"})
    assert hidden.status_code == missing.status_code == 404
    assert hidden.text.replace("jira", "T") == missing.text.replace("ghost", "T")


def test_records_page_in_time_order_and_hold_no_argument_values(world: World) -> None:
    root: Api = world.api("root")
    records = every_item(root, "remote-calls", limit="2")
    assert [r["request_id"] for r in records] == [f"req-{i}" for i in range(len(CALLS))]
    assert records[0]["args_hash"] == args_hash({"q": "private words 0"})
    assert "private words" not in str(records)
    filtered = root.get("remote-calls", params={"kind": "mcp", "principal": "user:dev/bob"}).json()["items"]
    assert [r["request_id"] for r in filtered] == ["req-2"]
    later = root.get("remote-calls", params={"since": "1h", "until": "2099-01-01"}).json()["items"]
    assert [r["request_id"] for r in later] == [f"req-{i}" for i in range(len(CALLS))]
    assert root.get("remote-calls", params={"until": "1h"}).json()["items"] == []


@pytest.mark.parametrize(("params", "param"), [
    ({"kind": "model"}, "kind"), ({"group_by": "model"}, "group_by"), ({"since": "yesterday"}, "since"),
    ({"target": "../x"}, "target"), ({"principal": "bob"}, "principal"), ({"limit": "0"}, "limit"),
    ({"cursor": "forged.0000"}, "cursor"), ({"q": "1"}, "q"),
])
def test_bad_report_parameters_are_named(world: World, params: dict[str, str], param: str) -> None:
    answer = world.api("root").get("remote-calls", params=params)
    assert answer.status_code == 400 and error(answer)["param"] == param, answer.text


# -- the CLI ----------------------------------------------------------------------------------------

def test_usage_reports_the_calls_too(world: World) -> None:
    import json

    grouped = cli(world.env, "usage", "--calls", "--by", "target", "--output", "json")
    assert grouped.returncode == 0, grouped.stderr
    rows = {(r["kind"], r["target"]): r["calls"] for r in json.loads(grouped.stdout)}
    assert rows == {("mcp", "github"): 3, ("mcp", "jira"): 1, ("agent", "triage"): 1}
    text = cli(world.env, "usage", "--since", "1d")
    assert text.returncode == 0, text.stderr
    assert "MCP and agent calls" in text.stdout and "github" in text.stdout and "p95_ms" in text.stdout
    quiet = cli(world.env, "usage", "--calls", "--since", "2000-01-01", "--until", "2000-01-02")
    assert quiet.returncode == 0 and "no MCP or agent calls recorded" in quiet.stdout
