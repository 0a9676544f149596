"""Outbound auth end to end through `POST /mcp/{name}`, with the official MCP SDK client on one side and
official-SDK MCP servers on the other: an `entra` server that answers only to an Entra token for its own
api:// scope (from the gateway's managed identity, here the App Service endpoint backed by the fake
Entra), and a `headers` server that gets its secret header. Neither ever sees the caller's credentials.
`python -m shared mcp tools` asks the entra server with the same token.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import jwt
import pytest

from sandbox.emulator import AzureOpenAIEmulator
from sandbox.entra import FakeEntra, Signer
from sandbox.idp import DevIdentityProvider
from sandbox.loop import BackgroundLoop
from sandbox.managed_identity import ManagedIdentityEndpoint
from tests.harness import NewWorld, World, sandbox_config
from tests.manage.conftest import cli
from tests.mcp.conftest import connect
from tests.mcp.servers import McpUpstream
from tests.upstream.conftest import signers, tls  # noqa: F401  (pytest finds fixtures by name)
from tests.upstream.helpers import MI_CLIENT, TENANT, TLSFiles

RESOURCE = "api://weather-mcp"
SECRET_ENV, SECRET = "GATEWAY_SECRET_WEATHER_KEY", "weather-key-value"
CALLER_COOKIE = "gateway_session=caller-cookie"


class EntraProtected(McpUpstream):
    """The SDK's MCP server behind a bearer check: 401 unless the token is the fake Entra's for
    RESOURCE. Every request is kept, refused ones too."""

    def __init__(self, entra: FakeEntra) -> None:
        super().__init__("stateless", issuer="")
        self.entra = entra
        self.refused: list[dict[str, str]] = []

    async def _app(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
            if not self.entra.verify(headers.get("authorization", "").removeprefix("Bearer "), RESOURCE):
                self.refused.append(headers)
                await send({"type": "http.response.start", "status": 401,
                            "headers": [(b"www-authenticate", b"Bearer"), (b"content-length", b"0")]})
                await send({"type": "http.response.body", "body": b""})
                return
        await super()._app(scope, receive, send)


@pytest.fixture(scope="module")
def world(new_world: NewWorld, idp: DevIdentityProvider, emulator: AzureOpenAIEmulator, loop: BackgroundLoop,
          tls: TLSFiles, signers: dict[str, Signer]) -> Iterator[World]:  # noqa: F811
    entra = FakeEntra(ssl_context=tls.server, client_ssl=tls.client, signer=signers["entra"])
    entra.resources.add(RESOURCE)
    loop.run(entra.start())
    endpoint = ManagedIdentityEndpoint(entra)
    loop.run(endpoint.start())
    endpoint.attach(entra.add_identity(TENANT, MI_CLIENT))
    weather, keyed = EntraProtected(entra).start(), McpUpstream("json", issuer="").start()
    doc = sandbox_config(idp, emulator)
    doc["mcp_servers"] = [
        {"name": "weather", "url": weather.url, "auth": {"type": "entra", "scope": f"{RESOURCE}/.default"}},
        {"name": "keyed", "url": keyed.url,
         "auth": {"type": "headers", "headers_env": {"X-Api-Key": SECRET_ENV}}}]
    doc["collaborators"] += [
        {"resource": f"mcp-server:{name}", "principal": "user:dev/alice", "role": "viewer"}
        for name in ("weather", "keyed")]
    env = {**endpoint.env, "AZURE_CLIENT_ID": MI_CLIENT, SECRET_ENV: SECRET}
    try:
        with new_world(config=doc, env=env, tokens={"alice": None},
                       upstreams={"weather": weather, "keyed": keyed, "entra": entra,
                                  "endpoint": endpoint}) as world:
            yield world
    finally:
        weather.stop()
        keyed.stop()
        loop.run(endpoint.stop())
        loop.run(entra.stop())


CALLER = {"Cookie": CALLER_COOKIE, "X-Forwarded-For": "203.0.113.9"}


def caller_credentials(world: World) -> list[str]:
    return [world.tokens["alice"], CALLER_COOKIE]


def leaked(world: World, upstream: McpUpstream) -> list[str]:
    """The caller's credentials anywhere in what the server was sent (headers or body)."""
    sent = [json.dumps(seen.raw_headers) + seen.body.decode("utf-8", "replace") for seen in upstream.seen]
    return [secret for secret in caller_credentials(world) for text in sent if secret in text]


@pytest.mark.parametrize("mode", ["modern", "sessions"])
async def test_entra_server_gets_a_token_for_its_own_scope(world: World, mode: str) -> None:
    weather: EntraProtected = world.upstreams["weather"]
    weather.seen.clear()
    async with connect(world, "weather", "alice", mode, **CALLER) as client:
        listed = await client.list_tools()
        result = await client.call_tool("search_docs", {"query": "rain"})
    assert "search_docs" in {tool.name for tool in listed.tools}
    assert result.content[0].text == "docs about rain"  # type: ignore[union-attr]
    assert weather.refused == [] and weather.seen
    for seen in weather.seen:
        token = seen.headers["authorization"].removeprefix("Bearer ")
        claims = jwt.decode(token, options={"verify_signature": False})
        assert claims["aud"] == RESOURCE and claims["appid"] == MI_CLIENT
        assert "cookie" not in seen.headers and "api-key" not in seen.headers
    assert leaked(world, weather) == []
    endpoint: ManagedIdentityEndpoint = world.upstreams["endpoint"]
    assert {"client_id": MI_CLIENT, "resource": RESOURCE} in endpoint.requests


@pytest.mark.parametrize("mode", ["modern", "sessions"])
async def test_headers_server_gets_its_secret_header_not_the_callers_credentials(world: World,
                                                                                 mode: str) -> None:
    keyed: McpUpstream = world.upstreams["keyed"]
    keyed.seen.clear()
    async with connect(world, "keyed", "alice", mode, **{**CALLER, "X-Api-Key": "caller-chosen"}) as client:
        result = await client.call_tool("get_item", {"item_id": "7"})
    assert result.content[0].text == "item 7"  # type: ignore[union-attr]
    assert keyed.seen
    for seen in keyed.seen:
        assert [v for k, v in seen.raw_headers if k == "x-api-key"] == [SECRET]
        assert "authorization" not in seen.headers and "cookie" not in seen.headers
    assert leaked(world, keyed) == []


def test_mcp_tools_asks_an_entra_server_with_its_token(world: World) -> None:
    """The CLI on the gateway's own identity: the same managed identity, the same scope."""
    weather: EntraProtected = world.upstreams["weather"]
    weather.seen.clear()
    done = cli(world.env, "mcp", "tools", "weather", "--output", "json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["auth"] == "entra" and report["protocol"] == "2026-07-28"
    assert {t["name"] for t in report["tools"]} >= {"search_docs", "get_item", "delete_item"}
    assert weather.refused == [] and weather.seen
    assert all(jwt.decode(s.headers["authorization"].removeprefix("Bearer "),
                          options={"verify_signature": False})["aud"] == RESOURCE for s in weather.seen)
