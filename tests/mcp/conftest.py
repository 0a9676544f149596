"""The MCP plane's world: official-SDK MCP servers of each kind on loopback, a gateway in front of them
with tool filters and identity-assertion auth, and SDK clients of both eras connected through it.

Servers (each `docs-<kind>`, filter deny delete_*): stateful (sessions, SSE answers), stateless (SSE
answers) and json (JSON answers). `slow-sse` and `slow-json` are the stateful and json servers again
with a one-second timeout; nobody holds a role on `forbidden`. alice and bob are viewers through the
`tools` workspace; carol has no role.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import httpx2
import pytest
import requests
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from sandbox.emulator import AzureOpenAIEmulator
from sandbox.idp import DevIdentityProvider
from tests.harness import NewWorld, World, sandbox_config
from tests.mcp.servers import KINDS, McpUpstream

PUBLIC_URL = "https://gateway.example"
MODES = {"modern": "2026-07-28", "sessions": "legacy"}
SERVERS = [f"docs-{kind}" for kind in KINDS]
USERS: dict[str, dict[str, Any] | None] = {"alice": {"email": "alice@example.com"}, "bob": None,
                                           "carol": None}
DENY = {"deny": ["delete_*"]}
BODY_LIMIT = 262144


@pytest.fixture(scope="package")
def upstreams() -> Iterator[dict[str, McpUpstream]]:
    started = {kind: McpUpstream(kind, issuer=PUBLIC_URL).start() for kind in KINDS}
    yield started
    for upstream in started.values():
        upstream.stop()


def mcp_config(idp: DevIdentityProvider, emulator: AzureOpenAIEmulator,
               upstreams: dict[str, McpUpstream]) -> dict[str, Any]:
    def server(name: str, kind: str, **extra: Any) -> dict[str, Any]:
        return {"name": name, "url": upstreams[kind].url, "workspace": "tools",
                "auth": {"type": "identity-assertion"}, "tools": DENY, **extra}

    doc = sandbox_config(idp, emulator)
    doc["workspaces"] = [{"name": "tools"}]
    doc["mcp_servers"] = [*(server(f"docs-{kind}", kind) for kind in KINDS),
                          server("slow-sse", "stateful", timeout_s=1),
                          server("slow-json", "json", timeout_s=1),
                          {"name": "forbidden", "url": upstreams["json"].url}]
    doc["collaborators"] = [*doc["collaborators"],
                            {"resource": "workspace:tools", "principal": "user:dev/alice", "role": "viewer"},
                            {"resource": "workspace:tools", "principal": "user:dev/bob", "role": "viewer"}]
    return doc


@pytest.fixture(scope="package")
def world(new_world: NewWorld, idp: DevIdentityProvider, emulator: AzureOpenAIEmulator,
          upstreams: dict[str, McpUpstream]) -> Iterator[World]:
    with new_world(config=mcp_config(idp, emulator, upstreams), tokens=USERS,
                   env={"GATEWAY_PUBLIC_URL": PUBLIC_URL, "GATEWAY_MAX_BODY_BYTES": str(BODY_LIMIT)},
                   upstreams=upstreams) as world:
        for upstream in upstreams.values():
            upstream.jwks_url = f"{world.url}/.well-known/jwks.json"
        yield world


@asynccontextmanager
async def connect(world: World, server: str, user: str, mode: str, **headers: str) -> AsyncIterator[Client]:
    """The SDK client of the era `mode` (MODES) on <gateway>/mcp/<server>, as `user`."""
    http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {world.tokens[user]}", **headers},
                              timeout=httpx2.Timeout(30, read=60))
    async with http, Client(streamable_http_client(f"{world.url}/mcp/{server}", http_client=http),
                            mode=MODES[mode]) as client:
        yield client


META = {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {}}
ACCEPT = "application/json, text/event-stream"


def modern(method: str, params: dict[str, Any] | None = None, rpc_id: int = 1,
           **headers: str) -> tuple[dict[str, Any], dict[str, str]]:
    """A stateless-era request as the SDK client writes it: body and headers."""
    body = {"jsonrpc": "2.0", "id": rpc_id, "method": method, "params": {**(params or {}), "_meta": META}}
    sent = {"Accept": ACCEPT, "MCP-Protocol-Version": "2026-07-28", "Mcp-Method": method}
    name = (params or {}).get("name")
    if name is not None:
        sent["Mcp-Name"] = name
    return body, {**sent, **headers}


def post(world: World, server: str, body: Any, headers: dict[str, str] | None = None, *,
         user: str | None = "alice", data: bytes | None = None) -> requests.Response:
    """A raw POST to <gateway>/mcp/<server> as `user` (None: no token)."""
    sent = {"Content-Type": "application/json", "Accept": ACCEPT, **(headers or {})}
    if user is not None:
        sent.setdefault("Authorization", f"Bearer {world.tokens[user]}")
    payload = data if data is not None else json.dumps(body).encode()
    return requests.post(f"{world.url}/mcp/{server}", data=payload, headers=sent, timeout=30)


def initialize(world: World, server: str, user: str = "alice") -> str:
    """A session-era session at `server` for `user`: the sealed id the caller got."""
    body = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
            "params": {"protocolVersion": "2025-11-25", "capabilities": {},
                       "clientInfo": {"name": "test", "version": "1"}}}
    answer = post(world, server, body, user=user)
    assert answer.status_code == 200, answer.text
    session = answer.headers["mcp-session-id"]
    note = {"jsonrpc": "2.0", "method": "notifications/initialized"}
    sent = {"Mcp-Session-Id": session, "MCP-Protocol-Version": "2025-11-25"}
    assert post(world, server, note, sent, user=user).status_code == 202
    return session
