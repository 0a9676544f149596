"""The official MCP SDK client of both eras, through the gateway, against every kind of SDK server:
the caller sees only allowed tools, calls them, cannot call a hidden one, and is who they are to the
server (the gateway's identity assertion), never someone else."""

from __future__ import annotations

import itertools

import pytest
from mcp.shared.exceptions import MCPError

from tests.harness import World
from tests.mcp.conftest import MODES, SERVERS, connect

COMBINATIONS = list(itertools.product(SERVERS, MODES))
ALLOWED = {"search_docs", "get_item", "wait", "fail", "whoami"}


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
