"""How callers and servers have attacked an MCP gateway, each as a request a user could send or an
answer a hostile server could give, and what the caller then sees."""

from __future__ import annotations

import asyncio
import re
import time
import uuid

import pytest
from mcp.shared.exceptions import MCPError

from tests.harness import World
from tests.mcp.conftest import (
    BODY_LIMIT,
    MODES,
    PUBLIC_URL,
    connect,
    initialize,
    modern,
    post,
)


def marker() -> str:
    return uuid.uuid4().hex


def reached(world: World, kind: str, text: str) -> bool:
    return any(text.encode() in seen.body for seen in world.upstreams[kind].seen)


def rpc_error(answer: object) -> dict[str, object]:
    doc = answer.json()  # type: ignore[attr-defined]
    assert doc["jsonrpc"] == "2.0"
    return dict(doc["error"])


@pytest.mark.parametrize(("headers", "params"), [
    ({"Mcp-Method": "tools/list"}, {"name": "search_docs"}),              # method header lies
    ({"Mcp-Name": "search_docs"}, {"name": "delete_item"}),               # name header lies
    ({"Mcp-Name": "=?base64?c2VhcmNoX2RvY3M=?="}, {"name": "get_item"}),   # encoded name lies
    ({"Mcp-Name": "=?base64?!!!?="}, {"name": "search_docs"}),            # malformed encoding
], ids=["method", "name", "encoded-name", "bad-encoding"])
def test_header_body_mismatch_is_refused(world: World, headers: dict[str, str],
                                         params: dict[str, str]) -> None:
    tag = marker()
    body, sent = modern("tools/call", {**params, "arguments": {"query": tag}}, **headers)
    answer = post(world, "docs-json", body, sent)
    assert answer.status_code == 400
    assert rpc_error(answer)["code"] == -32020
    assert not reached(world, "json", tag)


def test_header_mismatch_by_a_repeated_routing_header(world: World) -> None:
    tag = marker()
    body, sent = modern("tools/call", {"name": "search_docs", "arguments": {"query": tag}})
    answer = post(world, "docs-json", body, {**sent, "Mcp-Method": "tools/call, tools/call"})
    assert answer.status_code == 400 and rpc_error(answer)["code"] == -32020
    assert not reached(world, "json", tag)


def test_session_replay_by_another_principal_is_404(world: World) -> None:
    session = initialize(world, "docs-stateful", "alice")
    tag = marker()
    body = {"jsonrpc": "2.0", "id": 2, "method": "tools/call",
            "params": {"name": "search_docs", "arguments": {"query": tag}}}
    sent = {"Mcp-Session-Id": session, "MCP-Protocol-Version": "2025-11-25"}
    assert post(world, "docs-stateful", body, sent, user="alice").status_code == 200
    replayed = post(world, "docs-stateful", body, sent, user="bob")
    assert replayed.status_code == 404
    assert replayed.json()["error"]["message"] == "session not found: start a new session"
    other_server = post(world, "docs-stateless", body, sent, user="alice")
    assert other_server.status_code == 404
    seen = [s for s in world.upstreams["stateful"].seen if tag.encode() in s.body]
    assert len(seen) == 1                         # alice's own call, never bob's


@pytest.mark.parametrize("forged", [
    "gs1.AAAA.AAAAAAAAAAAAAAAAAAAAAA", "not-sealed-at-all", "gs1." + "A" * 600,
], ids=["bad-mac", "plain", "long"])
def test_forged_session_id_is_404_and_never_forwarded(world: World, forged: str) -> None:
    tag = marker()
    body = {"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": {"cursor": tag}}
    sent = {"Mcp-Session-Id": forged, "MCP-Protocol-Version": "2025-11-25"}
    answer = post(world, "docs-stateful", body, sent)
    assert answer.status_code == 404
    assert not reached(world, "stateful", tag)


def test_forged_session_id_the_servers_own_unsealed_id_is_404(world: World) -> None:
    session = initialize(world, "docs-stateful", "alice")
    upstream_id = world.upstreams["stateful"].seen[-1].headers["mcp-session-id"]
    assert upstream_id != session
    tag = marker()
    body = {"jsonrpc": "2.0", "id": 3, "method": "tools/list", "params": {"cursor": tag}}
    answer = post(world, "docs-stateful", body, {"Mcp-Session-Id": upstream_id,
                                                 "MCP-Protocol-Version": "2025-11-25"})
    assert answer.status_code == 404
    assert not reached(world, "stateful", tag)


def test_no_role_and_unknown_server_are_identical_404s(world: World) -> None:
    body, sent = modern("tools/list")
    answers = [post(world, "docs-json", body, sent, user="carol"),     # no role on a real server
               post(world, "forbidden", body, sent, user="alice"),     # a server nobody may use
               post(world, "no-such-server", body, sent, user="alice")]
    assert {a.status_code for a in answers} == {404}
    assert len({a.content for a in answers}) == 1
    assert answers[0].json()["jsonrpc"] == "2.0"


@pytest.mark.parametrize("credential", ["authorization", "api-key"])
def test_caller_credentials_and_cookies_never_reach_the_server(world: World, credential: str) -> None:
    token = world.tokens["alice"]
    tag = marker()
    body, sent = modern("tools/call", {"name": "search_docs", "arguments": {"query": tag}})
    extra = {"Cookie": "gw_session=secret-cookie", "X-Forwarded-For": "10.0.0.1", "Proxy-Authorization": "x"}
    extra |= {"Authorization": f"Bearer {token}"} if credential == "authorization" else {"api-key": token}
    answer = post(world, "docs-json", body, {**sent, **extra}, user=None)
    assert answer.status_code == 200, answer.text
    seen = next(s for s in world.upstreams["json"].seen if tag.encode() in s.body)
    assert not {"cookie", "api-key", "x-forwarded-for", "proxy-authorization"} & set(seen.headers)
    assert all(token not in value for _, value in seen.raw_headers)
    assert seen.headers["authorization"].startswith("Bearer ey")     # the gateway's assertion instead


async def test_no_token_or_assertion_in_the_gateways_logs(world: World) -> None:
    for mode in MODES:
        async with connect(world, "docs-stateful", "alice", mode) as client:
            await client.call_tool("whoami", {})
    await asyncio.sleep(0.2)
    logs = world.logs()
    assertions = {seen.headers["authorization"].removeprefix("Bearer ")
                  for seen in world.upstreams["stateful"].seen}
    assert assertions
    for secret in [*world.tokens.values(), *assertions]:
        assert secret not in logs
        assert secret.split(".")[2] not in logs           # not even its signature


def test_batch_is_refused(world: World) -> None:
    tag = marker()
    body = [{"jsonrpc": "2.0", "id": 1, "method": "tools/call",
             "params": {"name": "search_docs", "arguments": {"query": tag}}}]
    answer = post(world, "docs-json", body, {"MCP-Protocol-Version": "2025-11-25"})
    assert answer.status_code == 400 and rpc_error(answer)["code"] == -32600
    assert not reached(world, "json", tag)


def test_oversize_body_is_refused(world: World) -> None:
    body, sent = modern("tools/call", {"name": "search_docs", "arguments": {"query": "x" * BODY_LIMIT}})
    answer = post(world, "docs-json", body, sent)
    assert answer.status_code == 413 and answer.json()["jsonrpc"] == "2.0"


@pytest.mark.parametrize("template", [
    b'{"jsonrpc":"2.0","id":1,"method":"tools/list","method":"tools/call","params":{"name":"delete_item",'
    b'"arguments":{"item_id":"TAG"}}}',
    b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search_docs","arguments":'
    b'{"query":"TAG","n":NaN}}}',
    b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search_docs","arguments":'
    b'{"query":"TAG\\ud800"}}}',
], ids=["duplicate-member", "NaN", "lone-surrogate"])
def test_non_strict_json_is_refused(world: World, template: bytes) -> None:
    tag = marker()
    answer = post(world, "docs-json", None, {"MCP-Protocol-Version": "2025-11-25"},
                  data=template.replace(b"TAG", tag.encode()))
    assert answer.status_code == 400 and rpc_error(answer)["code"] == -32700
    assert not reached(world, "json", tag)


def test_upstream_redirect_is_not_followed(world: World) -> None:
    world.upstreams["json"].faults.append("redirect")
    body, sent = modern("tools/call", {"name": "search_docs", "arguments": {"query": "x"}})
    answer = post(world, "docs-json", body, sent)
    assert answer.status_code == 502
    assert "redirect" in rpc_error(answer)["message"]
    assert "location" not in answer.headers


@pytest.mark.parametrize("status", ["401", "403"])
def test_upstream_refusing_the_gateways_credentials_is_502(world: World, status: str) -> None:
    world.upstreams["json"].faults.append(status)
    body, sent = modern("tools/call", {"name": "search_docs", "arguments": {"query": "x"}})
    answer = post(world, "docs-json", body, sent)
    assert answer.status_code == 502
    assert "refused the gateway's credentials" in rpc_error(answer)["message"]
    assert "www-authenticate" not in answer.headers


@pytest.mark.parametrize(("server", "mode"), [(s, m) for s in ("slow-sse", "slow-json") for m in MODES])
async def test_upstream_slow_past_timeout_answers_an_error(world: World, server: str, mode: str) -> None:
    async with connect(world, server, "alice", mode) as client:
        started = time.monotonic()
        with pytest.raises(MCPError) as raised:
            await client.call_tool("wait", {"seconds": 4})
        assert time.monotonic() - started < 3.5
    assert raised.value.error.code == -32001
    assert "did not" in raised.value.error.message


@pytest.mark.parametrize("origin", ["https://evil.example", "null", "http://gateway.example",
                                    "https://gateway.example:8443"])
def test_origin_mismatch_is_403(world: World, origin: str) -> None:
    tag = marker()
    body, sent = modern("tools/call", {"name": "search_docs", "arguments": {"query": tag}})
    answer = post(world, "docs-json", body, {**sent, "Origin": origin})
    assert answer.status_code == 403 and answer.json()["jsonrpc"] == "2.0"
    assert not reached(world, "json", tag)


def test_the_gateways_own_origin_is_accepted(world: World) -> None:
    body, sent = modern("tools/list")
    assert post(world, "docs-json", body, {**sent, "Origin": PUBLIC_URL}).status_code == 200


def test_upstream_set_cookie_and_other_headers_are_not_relayed(world: World) -> None:
    world.upstreams["json"].faults.append("hostile-headers")
    body, sent = modern("tools/call", {"name": "search_docs", "arguments": {"query": "x"}})
    answer = post(world, "docs-json", body, sent)
    assert answer.status_code == 200
    assert not {"set-cookie", "www-authenticate", "x-internal-host", "location"} & set(answer.headers)
    assert "secret-banner" not in answer.headers.get("server", "")


@pytest.mark.parametrize("session", ["x" * 257, "bad id", "caf\u00e9"], ids=["long", "space", "non-ascii"])
def test_malformed_upstream_session_id_is_502(world: World, session: str) -> None:
    world.upstreams["stateful"].faults.append(f"session:{session}")
    body = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
            "params": {"protocolVersion": "2025-11-25", "capabilities": {},
                       "clientInfo": {"name": "test", "version": "1"}}}
    answer = post(world, "docs-stateful", body)
    assert answer.status_code == 502
    assert "mcp-session-id" not in answer.headers


async def test_every_tools_call_is_audited_with_its_outcome(world: World) -> None:
    async with connect(world, "docs-json", "bob", "modern") as client:
        await client.call_tool("get_item", {"item_id": "7"})
        assert (await client.call_tool("fail", {})).is_error
        with pytest.raises(MCPError):
            await client.call_tool("delete_item", {"item_id": "7"})
    await asyncio.sleep(0.2)
    lines = re.findall(r"remote call mcp docs-json (\S+) by user:dev/bob: (\w+) \((\d+)\)", world.logs())
    assert ("get_item", "ok", "200") in lines
    assert ("fail", "error", "200") in lines
    assert ("delete_item", "refused", "400") in lines


def test_hostile_tool_name_is_not_logged(world: World) -> None:
    """A name the filter does not deny goes to the server (which does not know it), but a name that is
    not a tool name's shape never reaches the audit log line."""
    evil = "x\u001b[31m\r\nforged log line"
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": evil, "arguments": {}}}
    answer = post(world, "docs-json", body, {"MCP-Protocol-Version": "2025-11-25"})
    assert answer.status_code == 200 and answer.json()["result"]["isError"] is True
    time.sleep(0.2)
    assert "forged log line" not in world.logs()
    assert "remote call mcp docs-json (not a tool name) by user:dev/alice" in world.logs()
