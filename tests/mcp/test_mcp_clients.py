"""The official MCP SDK client of both eras, through the gateway, against every kind of SDK server:
the caller sees only allowed tools, calls them, cannot call a hidden one, and is who they are to the
server (the gateway's identity assertion), never someone else."""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest
import requests
from mcp.shared.exceptions import MCPError

from tests.harness import World
from tests.mcp.conftest import MODES, SERVERS, connect, initialize, modern, post

COMBINATIONS = list(itertools.product(SERVERS, MODES))
ALLOWED = {"search_docs", "get_item", "wait", "count", "fail", "whoami"}


@pytest.mark.parametrize(("server", "mode"), COMBINATIONS)
async def test_list_tools_holds_only_allowed_tools_and_is_private(world: World, server: str,
                                                                  mode: str) -> None:
    async with connect(world, server, "alice", mode) as client:
        listed = await client.list_tools()
    assert {tool.name for tool in listed.tools} == ALLOWED
    assert listed.cache_scope == "private"


@pytest.mark.parametrize(("server", "mode"), COMBINATIONS)
async def test_call_an_allowed_tool(world: World, server: str, mode: str) -> None:
    async with connect(world, server, "alice", mode) as client:
        result = await client.call_tool("search_docs", {"query": "sealing"})
    assert not result.is_error
    assert result.content[0].text == "docs about sealing"


@pytest.mark.parametrize(("server", "mode"), COMBINATIONS)
async def test_hidden_tool_is_unknown_and_never_forwarded(world: World, server: str, mode: str) -> None:
    upstream = world.upstreams[server.removeprefix("docs-")]
    async with connect(world, server, "alice", mode) as client:
        with pytest.raises(MCPError) as raised:
            await client.call_tool("delete_item", {"item_id": "42"})
    assert not any(b"delete_item" in seen.body for seen in upstream.seen)
    assert raised.value.error.code == -32602
    assert "Unknown tool" in raised.value.error.message
    assert "delete_item" not in raised.value.error.message


@pytest.mark.parametrize(("server", "mode"), COMBINATIONS)
async def test_two_users_each_get_their_own_whoami(world: World, server: str, mode: str) -> None:
    for user in ("alice", "bob"):
        async with connect(world, server, user, mode) as client:
            result = await client.call_tool("whoami", {})
        assert not result.is_error, result.content
        assert result.content[0].text == f"user:dev/{user}"


def listed_on_the_wire(answer: requests.Response) -> dict[str, Any]:
    """The tools/list result as the caller's bytes carry it (JSON, or the event holding it)."""
    if answer.headers["content-type"].startswith("text/event-stream"):
        data = [line[5:].strip() for line in answer.text.splitlines() if line.startswith("data:")]
        return dict(next(json.loads(d) for d in data if '"result"' in d)["result"])
    return dict(answer.json()["result"])


@pytest.mark.parametrize(("server", "mode"), COMBINATIONS)
def test_every_tools_list_answer_on_the_wire_is_filtered_and_private(world: World, server: str,
                                                                     mode: str) -> None:
    if mode == "modern":
        body, sent = modern("tools/list")
    else:
        session = initialize(world, server) if server == "docs-stateful" else None
        body = {"jsonrpc": "2.0", "id": 5, "method": "tools/list"}
        sent = {"MCP-Protocol-Version": "2025-11-25", **({"Mcp-Session-Id": session} if session else {})}
    answer = post(world, server, body, sent)
    assert answer.status_code == 200, answer.text
    result = listed_on_the_wire(answer)
    assert {tool["name"] for tool in result["tools"]} == ALLOWED
    assert result["cacheScope"] == "private"
