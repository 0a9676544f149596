"""The MCP plane under the Functions host stand-in (function_app.py, the real worker path): a session-era
client's tools/call whose SSE answer carries progress events as the server produces them."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from sandbox.emulator import AzureOpenAIEmulator
from sandbox.idp import DevIdentityProvider
from tests.harness import NewWorld, World
from tests.mcp.conftest import PUBLIC_URL, USERS, connect, mcp_config
from tests.mcp.servers import McpUpstream


@pytest.fixture(scope="module")
def functions_world(new_world: NewWorld, idp: DevIdentityProvider, emulator: AzureOpenAIEmulator,
                    upstreams: dict[str, McpUpstream]) -> Iterator[World]:
    with new_world(config=mcp_config(idp, emulator, upstreams), tokens=USERS, host="functions",
                   env={"GATEWAY_PUBLIC_URL": PUBLIC_URL}, upstreams=upstreams) as world:
        yield world


async def test_a_streamed_tool_call_through_the_functions_host(functions_world: World) -> None:
    arrivals: list[float] = []

    async def progress(done: float, total: float | None, message: str | None) -> None:
        arrivals.append(time.monotonic())

    async with connect(functions_world, "docs-stateful", "alice", "sessions") as client:
        listed = await client.list_tools()
        result = await client.call_tool("count", {"steps": 5}, progress_callback=progress)
    assert "delete_item" not in {tool.name for tool in listed.tools}
    assert result.content[0].text == "counted 5"
    assert len(arrivals) == 5
    assert arrivals[-1] - arrivals[0] > 0.3          # each event arrived as it was sent, not all at the end
