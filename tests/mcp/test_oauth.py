"""Per-user OAuth to an MCP server: each user authorizes the gateway once (authorization code with PKCE,
through the gateway's start and callback routes), and the gateway then calls the server with that user's
own token, refreshed before it expires, revocable by the user and by the server's managers.

The gateway process stores the tokens; the bearer headers are then produced by a second, in-process
instance over the same tables and sealing key (as another instance of the app would), and the official
MCP SDK client calls the protected server with them.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from typing import Any

import pytest
import requests
from mcp import MCPError, UrlElicitationRequiredError
from mcp.types import URL_ELICITATION_REQUIRED, ElicitRequestURLParams

from sandbox.azurite import Azurite
from sandbox.emulator import AzureOpenAIEmulator
from sandbox.idp import DevIdentityProvider
from sandbox.loop import BackgroundLoop
from sandbox.oauth import FakeAuthorizationServer, ProtectedMcpServer
from shared.auth.identities import Principal
from shared.config.allowlist import Allowlist
from shared.config.model import Config, McpServer
from shared.config.schema import parse_item
from shared.config.snapshot import View
from shared.config.tables import service_from_settings
from shared.remote.auth import RemoteAuthProblem
from shared.remote.oauth_state import States
from shared.remote.oauth_store import TABLE_SUFFIX
from shared.remote.seal import Sealer
from shared.remote.services import RemoteServices
from shared.settings import load
from tests.harness import World, dev_provider, start_world
from tests.mcp.conftest import connect as sdk_client

PUBLIC = "http://gateway.test"
KEY = base64.b64encode(b"k" * 32).decode()
SECRET_ENV, SECRET = "GATEWAY_SECRET_NOTES_CLIENT", "notes-client-secret"
USERS = ("alice", "bob", "carol", "dave", "erin", "frank", "gina", "hal", "ivy", "judy", "kim", "leo", "max",
         "ned", "oona", "pat", "quinn")


@pytest.fixture(scope="module")
def world(azurite: Azurite, idp: DevIdentityProvider, emulator: AzureOpenAIEmulator, loop: BackgroundLoop,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    authorization = FakeAuthorizationServer(client_secret=SECRET)
    loop.run(authorization.start())
    mcp = ProtectedMcpServer(authorization)
    loop.run(mcp.start())
    oauth = {"type": "oauth", "client_id": authorization.client_id, "client_secret_env": SECRET_ENV}
    doc = {"identity_providers": [dev_provider(idp)],
           "mcp_servers": [{"name": "notes", "url": mcp.url, "auth": oauth},
                           {"name": "pinned", "url": mcp.url,
                            "auth": {**oauth, "authorization_server": authorization.issuer}},
                           {"name": "lost", "url": f"{authorization.issuer}/no-mcp-here", "auth": oauth}],
           "collaborators": [*({"resource": f"mcp-server:{s}", "principal": f"user:dev/{u}",
                                "role": "viewer"} for u in USERS for s in ("notes", "pinned", "lost")),
                             {"resource": "mcp-server:notes", "principal": "user:dev/manny",
                              "role": "manager"}]}
    env = {"GATEWAY_SEALING_KEY": KEY, "GATEWAY_PUBLIC_URL": PUBLIC, SECRET_ENV: SECRET,
           "GATEWAY_ADMINS": "user:dev/root"}
    tokens = {u: None for u in (*USERS, "mallory", "manny", "root")}
    servers = {s["name"]: parse_item("mcp_servers", s, allowlist=None) for s in doc["mcp_servers"]}
    with start_world(azurite, idp, emulator, tmp_path_factory.mktemp("gw-oauth"), config=doc, env=env,
                     tokens=tokens, upstreams={"as": authorization, "mcp": mcp, "servers": servers}) as w:
        yield w
    loop.run(mcp.stop())
    loop.run(authorization.stop())


def bearer(world: World, user: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {world.tokens[user]}"}


def start(world: World, user: str, server: str = "notes") -> str:
    answer = requests.get(f"{world.url}/mcp/{server}/oauth/start", headers=bearer(world, user), timeout=10)
    assert answer.status_code == 200, answer.text
    assert answer.headers["Cache-Control"] == "no-store"
    return str(answer.json()["authorization_url"])


def at_authorization_server(authorization_url: str, login: str) -> str:
    """The browser at the authorization server: approved as `login`; the callback URL it is sent to."""
    answer = requests.get(f"{authorization_url}&login_hint={login}", allow_redirects=False, timeout=10)
    assert answer.status_code == 302, answer.text
    location = answer.headers["Location"]
    assert location.startswith(f"{PUBLIC}/mcp/")
    return location


def back_at_gateway(world: World, callback: str, **headers: str) -> requests.Response:
    return requests.get(callback.replace(PUBLIC, world.url),
                        headers={"Accept": "application/json", **headers}, timeout=10)


def connect(world: World, user: str, server: str = "notes") -> None:
    answer = back_at_gateway(world, at_authorization_server(start(world, user, server), user))
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"connected": True, "server": server, "principal": f"user:dev/{user}"}


@pytest.fixture
async def instance(world: World, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[RemoteServices]:
    """Another instance of the gateway's remote services, on the same tables and sealing key."""
    monkeypatch.setenv(SECRET_ENV, SECRET)
    settings = load(world.env | {"GATEWAY_SEALING_KEY": KEY, "GATEWAY_PUBLIC_URL": PUBLIC})
    service = service_from_settings(settings)
    services = RemoteServices.build(settings, service=service)
    yield services
    await services.aclose()
    await service.close()


def server(world: World, name: str = "notes") -> McpServer:
    """The server as the gateway has it (the same document, parsed by the same schema)."""
    found: McpServer = world.upstreams["servers"][name]
    return found


async def http(method: str, url: str, **options: Any) -> requests.Response:
    return await asyncio.to_thread(requests.request, method, url, timeout=10, **options)


def user(name: str) -> Principal:
    return Principal(provider="dev", unique_id=name, email=None, identities=frozenset())


async def headers(services: RemoteServices, target: McpServer, who: str) -> dict[str, str]:
    view = View.build(Config(mcp_servers=(target,)), "v", frozenset(), 0.0,
                      allowlist=Allowlist(http_loopback=True))
    return await services.auth.headers(target, user(who), view)


async def fresh_headers(world: World, target: McpServer, who: str) -> dict[str, str]:
    """From an instance that has never seen this user (nothing in memory: storage decides)."""
    settings = load(world.env)
    service = service_from_settings(settings)
    services = RemoteServices.build(settings, service=service)
    try:
        return await headers(services, target, who)
    finally:
        await services.aclose()
        await service.close()


async def whoami(url: str, auth: dict[str, str]) -> str:
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client
    from mcp.shared._httpx_utils import create_mcp_http_client

    transport = streamable_http_client(url, http_client=create_mcp_http_client(headers=auth))
    async with Client(transport) as client:
        result = await client.call_tool("whoami", {})
    return str(result.content[0].text)  # type: ignore[union-attr]


# -- the flow ---------------------------------------------------------------------------------------

async def test_two_users_each_get_their_own_results(world: World, instance: RemoteServices) -> None:
    connect(world, "alice")
    connect(world, "bob")
    target = server(world)
    for who in ("alice", "bob", "alice"):
        assert await whoami(target.url, await headers(instance, target, who)) == f"hello {who}"
    assert await headers(instance, target, "alice") != await headers(instance, target, "bob")


async def test_discovered_and_pinned_authorization_servers(world: World, instance: RemoteServices) -> None:
    url = start(world, "carol", "pinned")
    assert url.startswith(world.upstreams["as"].issuer + "/authorize?")
    callback = "http%3A%2F%2Fgateway.test%2Fmcp%2Fpinned%2Foauth%2Fcallback"
    for part in ("code_challenge_method=S256", "response_type=code", "client_id=gateway-client",
                 f"redirect_uri={callback}", "resource=http%3A%2F%2F127.0.0.1"):
        assert part in url
    connect(world, "carol", "pinned")
    target = server(world, "pinned")
    assert await whoami(target.url, await headers(instance, target, "carol")) == "hello carol"


async def test_unauthorized_user_is_sent_to_start(world: World, instance: RemoteServices) -> None:
    with pytest.raises(RemoteAuthProblem) as caught:
        await headers(instance, server(world), "judy")
    assert caught.value.kind == "authorization_required"
    assert caught.value.authorize_url == f"{PUBLIC}/mcp/notes/oauth/start"


@pytest.mark.parametrize(("who", "token", "status"), [("mallory", True, 404), ("judy", False, 401)])
def test_start_needs_a_role_and_a_token(world: World, who: str, token: bool, status: int) -> None:
    answer = requests.get(f"{world.url}/mcp/notes/oauth/start", headers=bearer(world, who) if token else {},
                          timeout=10)
    assert answer.status_code == status
    assert "authorization_url" not in answer.text


async def test_refresh_after_expiry(world: World, instance: RemoteServices) -> None:
    authorization: FakeAuthorizationServer = world.upstreams["as"]
    authorization.access_lifetime = 2
    try:
        connect(world, "dave")
    finally:
        authorization.access_lifetime = 3600
    target = server(world)
    first = await headers(instance, target, "dave")
    assert await whoami(target.url, first) == "hello dave"
    await asyncio.sleep(2.2)
    second = await headers(instance, target, "dave")
    assert second != first
    assert await whoami(target.url, second) == "hello dave"
    refreshed = [r for r in authorization.requests if r["grant_type"] == "refresh_token"]
    assert refreshed and refreshed[-1] == {"grant_type": "refresh_token", "resource": target.url,
                                           "outcome": "issued", "user": "dave"}
    assert await headers(instance, target, "dave") == second, "kept in memory once refreshed"
    assert await fresh_headers(world, target, "dave") == second, "and stored for the other instances"


async def test_revoke_by_user(world: World, instance: RemoteServices) -> None:
    connect(world, "erin")
    target = server(world)
    assert await whoami(target.url, await headers(instance, target, "erin")) == "hello erin"
    answer = await http("DELETE", f"{world.url}/mcp/notes/oauth", headers=bearer(world, "erin"))
    assert answer.status_code == 204
    with pytest.raises(RemoteAuthProblem, match="needs your authorization"):
        await fresh_headers(world, target, "erin")
    again = await http("DELETE", f"{world.url}/mcp/no-such-server/oauth", headers=bearer(world, "erin"))
    assert again.status_code == 204, "the same answer whether or not the server exists"


@pytest.mark.parametrize(("caller", "query", "status"), [
    ("mallory", {"principal": "user:dev/gina"}, 404),   # no role: as if the server did not exist
    ("frank", {"principal": "user:dev/gina"}, 403),     # a viewer, not a manager of the server
    ("manny", {"principal": "user:dev/gina"}, 200),     # the server's manager
    ("root", {}, 200),                                  # a gateway admin: everyone's
])
async def test_revoke_by_manager_or_admin(world: World, caller: str, query: dict[str, str],
                                          status: int) -> None:
    connect(world, "gina")
    answer = await http("DELETE", f"{world.url}/manage/mcp-servers/notes/oauth-tokens", params=query,
                        headers=bearer(world, caller))
    assert answer.status_code == status, answer.text
    target = server(world)
    if status == 200:
        assert answer.json()["revoked"] >= 1
        with pytest.raises(RemoteAuthProblem, match="needs your authorization"):
            await fresh_headers(world, target, "gina")
    else:
        assert (await fresh_headers(world, target, "gina"))["Authorization"].startswith("Bearer at-")


# -- through the gateway, as an MCP client sees it ---------------------------------------------------

async def refused_until_authorized(world: World, who: str, mode: str) -> MCPError:
    """The official SDK client through <gateway>/mcp/notes, before `who` has authorized the gateway."""
    caught: list[BaseException] = []
    try:        # at initialize (sessions) or at tools/list (stateless); the SDK may wrap it in a group
        async with sdk_client(world, "notes", who, mode) as client:
            await client.list_tools()
    except* MCPError as group:
        caught = leaves(group)
    assert len(caught) == 1, caught
    assert isinstance(caught[0], MCPError)
    return caught[0]


def leaves(error: BaseException) -> list[BaseException]:
    if isinstance(error, BaseExceptionGroup):
        return [leaf for inner in error.exceptions for leaf in leaves(inner)]
    return [error]


async def through_gateway(world: World, who: str, mode: str) -> tuple[set[str], str]:
    async with sdk_client(world, "notes", who, mode) as client:
        listed = await client.list_tools()
        result = await client.call_tool("whoami", {})
    return {tool.name for tool in listed.tools}, str(result.content[0].text)  # type: ignore[union-attr]


def elicited(error: MCPError) -> ElicitRequestURLParams:
    """The one URL elicitation of a -32042 error, as the SDK reads it off the wire."""
    assert error.code == URL_ELICITATION_REQUIRED, error
    assert error.data["gateway_error"] == "authorization_required"
    assert error.data["authorize_url"] == f"{PUBLIC}/mcp/notes/oauth/start", "kept for clients that read it"
    (one,) = UrlElicitationRequiredError.from_error(error.error).elicitations
    assert one.mode == "url" and one.elicitation_id and "MCP server notes" in one.message
    return one


def in_browser(world: World, elicitation: ElicitRequestURLParams, who: str) -> None:
    """The user opens the elicited URL: no gateway token anywhere, the authorization server approves."""
    assert elicitation.url.startswith(world.upstreams["as"].issuer + "/authorize?")
    answer = back_at_gateway(world, at_authorization_server(elicitation.url, who))
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"connected": True, "server": "notes", "principal": f"user:dev/{who}"}


@pytest.mark.parametrize(("mode", "users"), [("modern", ("kim", "leo")), ("sessions", ("max", "ned"))])
async def test_sdk_client_is_sent_to_authorize_then_gets_its_own_results(world: World, mode: str,
                                                                         users: tuple[str, str]) -> None:
    """The error is MCP's URL elicitation: the authorization server's URL for this user, which opens
    in a browser; after it the user's client lists and calls tools through the gateway with the user's
    own token, never the caller's."""
    mcp: ProtectedMcpServer = world.upstreams["mcp"]
    asked = {who: elicited(await refused_until_authorized(world, who, mode)) for who in users}
    assert len({e.elicitation_id for e in asked.values()}) == len(users)
    for who in users:
        in_browser(world, asked[who], who)
    for who in (*users, users[0]):
        assert await through_gateway(world, who, mode) == ({"whoami"}, f"hello {who}")
    seen = list(mcp.seen)
    assert seen and all(header.startswith("Bearer at-") for header in seen)
    assert not any(world.tokens[who] in header for who in users for header in seen)


async def test_the_same_stateless_client_carries_on_after_authorizing(world: World) -> None:
    async with sdk_client(world, "notes", "oona", "modern") as client:
        with pytest.raises(MCPError) as caught:
            await client.list_tools()
        in_browser(world, elicited(caught.value), "oona")
        result = await client.call_tool("whoami", {})
    assert result.content[0].text == "hello oona"  # type: ignore[union-attr]


def test_elicitation_answer_is_not_cached(world: World) -> None:
    body = {"jsonrpc": "2.0", "id": 7, "method": "initialize",
            "params": {"protocolVersion": "2025-11-25", "capabilities": {},
                       "clientInfo": {"name": "test", "version": "1"}}}
    answer = requests.post(f"{world.url}/mcp/notes", json=body, timeout=10,
                           headers={**bearer(world, "pat"), "Accept": "application/json, text/event-stream"})
    assert answer.status_code == 403, answer.text
    assert answer.headers["Cache-Control"] == "no-store"
    assert answer.json()["id"] == 7 and answer.json()["error"]["code"] == URL_ELICITATION_REQUIRED


@pytest.mark.parametrize("mode", ["modern", "sessions"])
async def test_without_discovery_the_start_route_is_named(world: World, mode: str) -> None:
    """An authorization server that cannot be discovered: no URL to elicit, today's -32003."""
    caught: list[BaseException] = []
    try:
        async with sdk_client(world, "lost", "pat", mode) as client:
            await client.list_tools()
    except* MCPError as group:
        caught = leaves(group)
    assert len(caught) == 1 and isinstance(caught[0], MCPError), caught
    assert caught[0].code == -32003 and "needs your authorization" in caught[0].message
    assert caught[0].data == {"gateway_error": "authorization_required",
                              "authorize_url": f"{PUBLIC}/mcp/lost/oauth/start"}


# -- attacks ----------------------------------------------------------------------------------------

def refused(world: World, callback: str, **headers: str) -> None:
    """The callback is refused before any code reaches the token endpoint."""
    authorization: FakeAuthorizationServer = world.upstreams["as"]
    before = len(authorization.requests)
    answer = back_at_gateway(world, callback, **headers)
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["code"] == "invalid_request"
    assert len(authorization.requests) == before


def test_tampered_state_refused(world: World) -> None:
    callback = at_authorization_server(start(world, "hal"), "hal")
    at = callback.index("state=") + 20
    flipped = callback[:at] + ("A" if callback[at] != "A" else "B") + callback[at + 1:]
    refused(world, flipped)


def test_replayed_state_refused(world: World) -> None:
    callback = at_authorization_server(start(world, "hal"), "hal")
    assert back_at_gateway(world, callback).status_code == 200
    refused(world, callback)


def test_expired_state_refused(world: World) -> None:
    """Sealed with the gateway's own key (as if stolen from an old browser history), 10 minutes ago."""
    old = States(Sealer(base64.b64decode(KEY)), clock=lambda: time.time() - 601)
    state = old.seal(server(world), "user:dev/hal", "v" * 43)
    refused(world, f"{PUBLIC}/mcp/notes/oauth/callback?code=code-x&state={state}")


def test_state_of_another_server_refused(world: World) -> None:
    callback = at_authorization_server(start(world, "hal", "notes"), "hal")
    refused(world, callback.replace("/mcp/notes/", "/mcp/pinned/"))


def test_another_users_state_refused(world: World) -> None:
    """Bob completes Alice's authorization with his own gateway token: refused, nothing stored."""
    callback = at_authorization_server(start(world, "ivy"), "bob")
    refused(world, callback, Authorization=f"Bearer {world.tokens['bob']}")
    with pytest.raises(RemoteAuthProblem):
        asyncio.run(fresh_headers(world, server(world), "ivy"))


async def test_another_user_cannot_finish_an_elicited_authorization(world: World) -> None:
    """Quinn's elicited URL reaches Bob: approved as Bob and brought back with Bob's gateway token, it
    is refused, nothing is stored for Quinn, and Quinn is still asked to authorize."""
    first = elicited(await refused_until_authorized(world, "quinn", "modern"))
    refused(world, at_authorization_server(first.url, "bob"), Authorization=f"Bearer {world.tokens['bob']}")
    with pytest.raises(RemoteAuthProblem):
        await fresh_headers(world, server(world), "quinn")
    again = elicited(await refused_until_authorized(world, "quinn", "sessions"))
    assert again.url != first.url and again.elicitation_id != first.elicitation_id


async def test_hostile_editor_repointing_the_url_gets_no_user_token(world: World,
                                                                    instance: RemoteServices) -> None:
    """Tokens are bound to the server's URL: pointed elsewhere, the server gets none of them."""
    connect(world, "alice")
    elsewhere = replace(server(world), url="http://127.0.0.1:9/mcp")
    with pytest.raises(RemoteAuthProblem) as caught:
        await headers(instance, elsewhere, "alice")
    assert caught.value.kind == "authorization_required"


def test_tokens_encrypted_at_rest(world: World) -> None:
    from azure.data.tables import TableClient

    connect(world, "judy")
    table = TableClient.from_connection_string(world.env["GATEWAY_TABLES_CONNECTION"],
                                               f"{world.tables.prefix}{TABLE_SUFFIX}")
    rows = [dict(e) for e in table.list_entities() if e["PartitionKey"] == "notes"]
    table.close()
    assert any(r["principal"] == "user:dev/judy" for r in rows)
    issued = world.upstreams["as"].issued
    for row in rows:
        assert row["sealed"].startswith("v1.")
        assert not any(secret in str(row) for secret in issued)


def test_without_sealing_key_503_names_the_setting(azurite: Azurite, idp: DevIdentityProvider,
                                                     emulator: AzureOpenAIEmulator, world: World,
                                                     tmp_path_factory: pytest.TempPathFactory) -> None:
    doc = {"identity_providers": [dev_provider(idp)],
           "mcp_servers": [{"name": "notes", "url": server(world).url,
                            "auth": {"type": "oauth", "client_id": "gateway-client"}}],
           "collaborators": [{"resource": "mcp-server:notes", "principal": "user:dev/alice",
                              "role": "viewer"}]}
    with start_world(azurite, idp, emulator, tmp_path_factory.mktemp("gw-nokey"), config=doc,
                     tokens={"alice": None}) as keyless:
        answer = requests.get(f"{keyless.url}/mcp/notes/oauth/start", headers=bearer(keyless, "alice"),
                              timeout=10)
    assert answer.status_code == 503
    assert "GATEWAY_SEALING_KEY" in answer.json()["error"]["message"]


def test_zz_no_token_code_or_secret_in_logs(world: World) -> None:
    """Last in the module: every flow above has run through this gateway's log."""
    logs = world.logs()
    assert "oauth: user:dev/alice connected MCP server notes" in logs
    assert "oauth: no authorization URL for MCP server lost: MCP server lost publishes no OAuth" in logs
    leaked = [s for s in (*world.upstreams["as"].issued, SECRET) if s in logs]
    assert leaked == []
    assert "/authorize?" not in logs and "state=" not in logs, "no elicited URL nor its state"
