"""Finding an MCP server's authorization server: what hostile or broken metadata cannot make the gateway
do (send the browser, the code or the client secret to an address of its choosing)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from shared.config.allowlist import Allowlist
from shared.config.model import McpServer
from shared.config.schema import parse_item
from shared.errors import UpstreamError
from shared.remote.client import RemoteClient
from shared.remote.oauth_discovery import Discovery


class Metadata:
    """Serves whatever documents a test puts in `docs` (path -> JSON)."""

    def __init__(self) -> None:
        self.docs: dict[str, Any] = {}
        self.runner: web.AppRunner | None = None
        self.base = ""

    async def handle(self, request: web.Request) -> web.Response:
        doc = self.docs.get(request.path)
        return web.json_response(doc) if doc is not None else web.Response(status=404)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/{tail:.*}", self.handle)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", 0).start()
        self.base = f"http://127.0.0.1:{self.runner.addresses[0][1]}"


@pytest.fixture
async def metadata() -> AsyncIterator[Metadata]:
    server = Metadata()
    await server.start()
    yield server
    assert server.runner is not None
    await server.runner.cleanup()


def good(base: str, **changes: Any) -> dict[str, Any]:
    return {"issuer": f"{base}/as", "authorization_endpoint": f"{base}/as/authorize",
            "token_endpoint": f"{base}/as/token", "code_challenge_methods_supported": ["S256"], **changes}


async def find(metadata: Metadata, **auth: Any) -> Any:
    server: McpServer = parse_item("mcp_servers", {"name": "notes", "url": f"{metadata.base}/mcp", "auth": {
        "type": "oauth", "client_id": "c", **auth}}, allowlist=None)
    client = RemoteClient(allow_http_loopback=True)
    try:
        return await Discovery(client, Allowlist(http_loopback=True)).find(server)
    finally:
        await client.aclose()


async def test_discovered_through_protected_resource_metadata(metadata: Metadata) -> None:
    resource = {"authorization_servers": [f"{metadata.base}/as"]}
    metadata.docs["/.well-known/oauth-protected-resource/mcp"] = resource
    metadata.docs["/.well-known/oauth-authorization-server/as"] = good(metadata.base)
    found = await find(metadata)
    assert found.token_endpoint == f"{metadata.base}/as/token" and not found.client_secret_post


@pytest.mark.parametrize(("attack", "changes", "message"), [
    ("issuer_mix_up", {"issuer": "https://other.example.com"}, "names another issuer"),
    ("pkce_downgrade", {"code_challenge_methods_supported": ["plain"]}, "PKCE with S256"),
    ("plain_http_token_endpoint", {"token_endpoint": "http://attacker.example.com/token"}, "must use https"),
    ("plain_http_authorize", {"authorization_endpoint": "http://attacker.example.com/a"}, "must use https"),
])
async def test_hostile_authorization_server_metadata_refused(metadata: Metadata, attack: str,
                                                             changes: dict[str, Any], message: str) -> None:
    metadata.docs["/.well-known/oauth-authorization-server/as"] = good(metadata.base, **changes)
    with pytest.raises(UpstreamError, match=message):
        await find(metadata, authorization_server=f"{metadata.base}/as")


async def test_no_metadata_names_the_setting(metadata: Metadata) -> None:
    with pytest.raises(UpstreamError, match=r"set auth\.authorization_server"):
        await find(metadata)
