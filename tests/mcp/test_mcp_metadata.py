"""What an MCP client learns before and around its calls: the 401 challenge naming the resource
metadata, that document (the same for every well-formed name), the gateway's assertion keys and the
claims a server verifies, the 405 for GET, and DELETE ending a session."""

from __future__ import annotations

import pytest
import requests

from tests.harness import World
from tests.mcp.conftest import PUBLIC_URL, initialize, modern, post

METADATA = f"{PUBLIC_URL}/.well-known/oauth-protected-resource/mcp/docs-json"


def test_no_token_is_401_naming_the_resource_metadata(world: World) -> None:
    body, sent = modern("tools/list")
    answer = post(world, "docs-json", body, sent, user=None)
    assert answer.status_code == 401
    assert answer.headers["www-authenticate"] == f'Bearer resource_metadata="{METADATA}"'
    assert answer.json()["jsonrpc"] == "2.0"


def test_invalid_token_is_401_with_the_metadata_and_the_reason(world: World) -> None:
    body, sent = modern("tools/list")
    answer = post(world, "docs-json", body, {**sent, "Authorization": "Bearer not.a.jwt"}, user=None)
    assert answer.status_code == 401
    challenge = answer.headers["www-authenticate"]
    assert challenge.startswith(f'Bearer resource_metadata="{METADATA}", error="invalid_token", '
                                'error_description="')


@pytest.mark.parametrize("name", ["docs-json", "no-such-server", "forbidden"])
def test_resource_metadata_reads_the_same_for_every_name(world: World, name: str) -> None:
    answer = requests.get(f"{world.url}/.well-known/oauth-protected-resource/mcp/{name}", timeout=10)
    assert answer.status_code == 200
    assert answer.json() == {"resource": f"{PUBLIC_URL}/mcp/{name}",
                             "authorization_servers": [world.idp.issuer],
                             "bearer_methods_supported": ["header"]}


@pytest.mark.parametrize("name", ["-bad", "a_b", "x" * 70, "%22quoted%22"])
def test_resource_metadata_of_a_malformed_name_is_404(world: World, name: str) -> None:
    answer = requests.get(f"{world.url}/.well-known/oauth-protected-resource/mcp/{name}", timeout=10)
    assert answer.status_code == 404


def test_malformed_name_in_a_challenge_is_never_echoed(world: World) -> None:
    body, sent = modern("tools/list")
    answer = post(world, "%22%2C%20x%3D%22", body, sent, user=None)
    assert answer.status_code == 404
    assert "www-authenticate" not in answer.headers


def test_jwks_is_cacheable_and_verifies_the_assertions(world: World) -> None:
    answer = requests.get(f"{world.url}/.well-known/jwks.json", timeout=10)
    assert answer.status_code == 200
    assert answer.headers["cache-control"] == "public, max-age=300"
    (key,) = answer.json()["keys"]
    assert key["kty"] == "EC" and key["alg"] == "ES256" and "d" not in key
    body, sent = modern("tools/call", {"name": "whoami", "arguments": {}})
    for user in ("alice", "bob"):
        assert post(world, "docs-json", body, sent, user=user).json()["result"]["content"][0]["text"] \
            == f"user:dev/{user}"
    alice, bob = world.upstreams["json"].claims[-2:]
    for claims in (alice, bob):
        assert claims["iss"] == PUBLIC_URL and claims["aud"] == world.upstreams["json"].url
        assert 0 < claims["exp"] - claims["iat"] <= 300
    assert alice["email"] == "alice@example.com" and "email" not in bob


def test_get_is_405_with_allow(world: World) -> None:
    answer = requests.get(f"{world.url}/mcp/docs-json", headers={"Authorization": "Bearer x"}, timeout=10)
    assert answer.status_code == 405
    assert answer.headers["allow"] == "DELETE, POST"


def test_delete_ends_the_session_at_the_server(world: World) -> None:
    session = initialize(world, "docs-stateful")
    upstream = world.upstreams["stateful"]
    upstream_id = upstream.seen[-1].headers["mcp-session-id"]
    sent = {"Authorization": f"Bearer {world.tokens['alice']}", "Mcp-Session-Id": session,
            "MCP-Protocol-Version": "2025-11-25"}
    assert requests.delete(f"{world.url}/mcp/docs-stateful", headers=sent, timeout=10).status_code == 200
    assert upstream.seen[-1].method == "DELETE" and upstream.seen[-1].headers["mcp-session-id"] == upstream_id
    body = {"jsonrpc": "2.0", "id": 9, "method": "tools/list"}
    sent = {"Mcp-Session-Id": session, "MCP-Protocol-Version": "2025-11-25"}
    after = post(world, "docs-stateful", body, sent)
    assert after.status_code == 404          # the server's answer: the client starts a new session


def test_delete_by_another_principal_is_404_and_never_forwarded(world: World) -> None:
    session = initialize(world, "docs-stateful")
    upstream = world.upstreams["stateful"]
    before = sum(seen.method == "DELETE" for seen in upstream.seen)
    sent = {"Authorization": f"Bearer {world.tokens['bob']}", "Mcp-Session-Id": session}
    assert requests.delete(f"{world.url}/mcp/docs-stateful", headers=sent, timeout=10).status_code == 404
    assert sum(seen.method == "DELETE" for seen in upstream.seen) == before
