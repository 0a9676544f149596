"""Outbound auth `entra`: the gateway gets a token for the MCP server's own scope from a credential it
already holds (its managed identity, or a named account's credential kind), never passing on the
caller's token; a scope for Azure itself is refused at apply and again where the token would be got."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp import web

from sandbox.entra import FakeEntra, FederatedCredential
from sandbox.managed_identity import ManagedIdentityEndpoint
from shared.auth.identities import Principal
from shared.config.allowlist import Allowlist
from shared.config.model import Config, McpServer
from shared.config.schema import ConfigError, parse, parse_item
from shared.config.snapshot import View
from shared.remote.auth import RemoteAuthenticator, RemoteAuthProblem
from shared.remote.client import RemoteClient, RemoteRequest
from shared.remote.entra import EntraMode, RemoteScopes
from shared.settings import load
from shared.upstream.azure_sdk import AzureHttp
from shared.upstream.credentials import Credentials
from shared.upstream.tokens import RefreshPolicy
from tests.upstream.helpers import CLIENT, MI_CLIENT, TENANT

RESOURCE = "api://weather-mcp"
ALICE = Principal(provider="dev", unique_id="alice", email="alice@example.com", identities=frozenset())
CALLER_TOKEN = "eyJ.callers-own-token.sig"


class Resource:
    """A server that answers 200 only to an Entra token for RESOURCE, and keeps what it was sent."""

    def __init__(self, entra: FakeEntra) -> None:
        self.entra = entra
        self.seen: list[dict[str, str]] = []
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.seen.append(dict(request.headers))
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        return web.json_response({"ok": True} if self.entra.verify(token, RESOURCE) else {},
                                 status=200 if self.entra.verify(token, RESOURCE) else 401)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/mcp", self.handle)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", 0).start()
        self.url = f"http://127.0.0.1:{self.runner.addresses[0][1]}/mcp"


@pytest.fixture
async def resource(entra: FakeEntra) -> AsyncIterator[Resource]:
    entra.resources.add(RESOURCE)
    server = Resource(entra)
    await server.start()
    yield server
    assert server.runner is not None
    await server.runner.cleanup()


def settings_allowlist(entra: FakeEntra, **extra: str) -> Allowlist:
    return Allowlist.from_settings(load({"GATEWAY_DEV_ALLOW_HTTP_LOOPBACK": "true",
                                         "GATEWAY_AUTHORITY_HOSTS": entra.url, **extra}))


@pytest.fixture
async def mode(entra: FakeEntra, entra_http: AzureHttp) -> AsyncIterator[Callable[..., EntraMode]]:
    made: list[Credentials] = []

    def make(client_id: str | None = MI_CLIENT, **settings: str) -> EntraMode:
        credentials = Credentials(allowlist=RemoteScopes.of(settings_allowlist(entra, **settings)),
                                  http=entra_http, environ={}, policy=RefreshPolicy(failure_hold_seconds=0))
        made.append(credentials)
        return EntraMode(credentials, client_id=client_id)

    yield make
    for credentials in made:
        await credentials.aclose()


def server(url: str, auth: dict[str, Any]) -> McpServer:
    item: McpServer = parse_item("mcp_servers", {"name": "weather", "url": url, "auth": auth}, allowlist=None)
    return item


def view(entra: FakeEntra, *items: Any, accounts: list[dict[str, Any]] = ()) -> View:  # type: ignore[assignment]
    config = Config(accounts=tuple(parse_item("accounts", a, allowlist=None) for a in accounts),
                    mcp_servers=tuple(items))
    return View.build(config, "v1", frozenset(), 0.0, allowlist=settings_allowlist(entra))


async def call(url: str, headers: dict[str, str]) -> int:
    client = RemoteClient(allow_http_loopback=True)
    try:
        reply = await client.open(RemoteRequest("POST", url, headers, b"{}", 5.0))
        await reply.read(10_000)
        return reply.status
    finally:
        await client.aclose()


async def test_managed_identity_token_for_the_servers_scope(
        entra: FakeEntra, identity_endpoint: ManagedIdentityEndpoint, resource: Resource,
        mode: Callable[..., EntraMode]) -> None:
    identity_endpoint.attach(entra.add_identity(TENANT, MI_CLIENT))
    target = server(resource.url, {"type": "entra", "scope": f"{RESOURCE}/.default"})
    entra_mode = mode()
    auth = RemoteAuthenticator(secret_prefix="GATEWAY_SECRET_", assertions=None,  # type: ignore[arg-type]
                               modes={"entra": entra_mode})
    for _ in range(3):
        headers = await auth.headers(target, ALICE, view(entra, target))
        assert await call(resource.url, headers) == 200
    assert identity_endpoint.requests == [{"client_id": MI_CLIENT, "resource": RESOURCE}], "one token, cached"
    assert all(CALLER_TOKEN not in str(seen) for seen in resource.seen)


async def test_named_accounts_workload_identity_asks_for_the_servers_scope(
        entra: FakeEntra, identity_endpoint: ManagedIdentityEndpoint, resource: Resource,
        mode: Callable[..., EntraMode]) -> None:
    identity = entra.add_identity(TENANT, MI_CLIENT)
    identity_endpoint.attach(identity)
    federated = FederatedCredential(entra.issuer(TENANT), identity.principal_id)
    entra.add_app(TENANT, CLIENT, federated=[federated])
    account = {"name": "aoai", "kind": "azure-openai", "endpoint": "https://acme.openai.azure.com",
               "auth": {"type": "workload-identity", "tenant_id": TENANT, "client_id": CLIENT,
                        "authority_host": entra.url,
                        "assertion": {"source": "managed-identity", "client_id": MI_CLIENT}}}
    target = server(resource.url, {"type": "entra", "scope": f"{RESOURCE}/.default", "account": "aoai"})
    headers = await mode(client_id=None).headers(target, ALICE, view(entra, target, accounts=[account]))
    assert await call(resource.url, headers) == 200
    issued = [r for r in entra.requests if r["outcome"] == "issued"]
    assert [(r["client_id"], r["scope"]) for r in issued] == [(CLIENT, f"{RESOURCE}/.default")]


@pytest.mark.parametrize("scope", ["https://management.azure.com/.default",
                                   "https://storage.azure.com/.default", "https://vault.azure.net/.default",
                                   "https://graph.microsoft.com/.default"])
def test_hostile_editor_control_plane_scope_refused_at_apply(entra: FakeEntra, scope: str) -> None:
    doc = {"mcp_servers": [{"name": "weather", "url": "https://mcp.example.com/mcp",
                            "auth": {"type": "entra", "scope": scope}}]}
    for allowlist in (settings_allowlist(entra), settings_allowlist(entra, GATEWAY_ENTRA_SCOPES=scope)):
        with pytest.raises(ConfigError) as caught:
            parse(doc, allowlist=allowlist)
        assert caught.value.field.endswith("auth.scope")


async def test_hostile_stored_control_plane_scope_gets_no_token(
        entra: FakeEntra, identity_endpoint: ManagedIdentityEndpoint, resource: Resource,
        mode: Callable[..., EntraMode]) -> None:
    """Stored before the allowlist applied (or under other settings): the token is never asked for."""
    identity_endpoint.attach(entra.add_identity(TENANT, MI_CLIENT))
    target = server(resource.url, {"type": "entra", "scope": "https://management.azure.com/.default"})
    with pytest.raises(RemoteAuthProblem) as caught:
        await mode(GATEWAY_ENTRA_SCOPES="https://management.azure.com/.default").headers(
            target, ALICE, view(entra))
    assert caught.value.kind == "unavailable" and "Resource Manager" in caught.value.message
    assert identity_endpoint.requests == [] and entra.requests == []


async def test_named_api_key_account_is_refused(entra: FakeEntra, resource: Resource,
                                                mode: Callable[..., EntraMode]) -> None:
    account = {"name": "keyed", "kind": "azure-openai", "endpoint": "https://acme.openai.azure.com",
               "auth": {"type": "api-key", "key_env": "GATEWAY_SECRET_KEY"}}
    target = server(resource.url, {"type": "entra", "scope": f"{RESOURCE}/.default", "account": "keyed"})
    with pytest.raises(RemoteAuthProblem, match="does not get Entra tokens"):
        await mode().headers(target, ALICE, view(entra, target, accounts=[account]))
    missing = server(resource.url, {"type": "entra", "scope": f"{RESOURCE}/.default", "account": "nope"})
    with pytest.raises(RemoteAuthProblem, match="does not exist"):
        await mode().headers(missing, ALICE, view(entra, missing))


def test_accounts_keep_their_own_scope_rule(entra: FakeEntra) -> None:
    """The remote rule is for synthetic accounts only: a model's account still cannot name api://."""
    doc = {"accounts": [{"name": "aoai", "kind": "azure-openai", "endpoint": "https://acme.openai.azure.com",
                         "auth": {"type": "managed-identity", "scope": f"{RESOURCE}/.default"}}]}
    with pytest.raises(ConfigError) as caught:
        parse(doc, allowlist=settings_allowlist(entra))
    assert caught.value.field.endswith("auth.scope")
