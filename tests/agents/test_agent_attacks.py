"""The agent plane under attack, from both sides: a caller trying to pass its credentials or headers
through to an agent, and an agent answering with redirects and hostile headers."""

from __future__ import annotations

import json
from typing import Any

import httpx
import jwt
import pytest

from shared.remote.seal import Sealer
from tests.agents.conftest import SEALING_KEY, message_params, rpc
from tests.agents.servers import HOSTILE, Agents
from tests.harness import World

SMUGGLED = {"Cookie": "session=caller-cookie", "Proxy-Authorization": "Basic Y2FsbGVyOnNlY3JldA==",
            "X-Forwarded-For": "10.0.0.1", "X-Forwarded-Host": "evil.example", "Forwarded": "for=10.0.0.1",
            "X-Ms-Client-Principal": "eyJhZG1pbiI6dHJ1ZX0=", "X-Api-Key": "caller-key",
            "Mcp-Session-Id": "caller-session", "Origin": "https://evil.example"}
ALLOWED_UPSTREAM = {"host", "content-type", "content-length", "accept", "a2a-version", "a2a-extensions",
                    "x-a2a-extensions", "x-request-id", "authorization"}


@pytest.mark.parametrize("credential", ["Authorization", "api-key"])
@pytest.mark.parametrize("agent", ["helper", "legacy"])
async def test_token_passthrough_caller_credentials_never_reach_the_agent(
        world: World, agents: Agents, credential: str, agent: str) -> None:
    """Neither the caller's token (as Authorization or api-key) nor its cookie nor any other header of
    its own reaches the agent: only the allowlisted ones, and the gateway's own authentication."""
    token = world.tokens["alice"]
    value = f"Bearer {token}" if credential == "Authorization" else token
    headers = {credential: value, **SMUGGLED, "A2A-Version": "1.0", "A2A-Extensions": "urn:example:ext",
               "x-request-id": "trace-me-1"}
    async with httpx.AsyncClient(timeout=30) as client:
        answer = await client.post(f"{world.url}/agents/{agent}", json=rpc("GetTask", {"id": "nope"}),
                                   headers=headers)
    assert answer.status_code == 200
    [(_, seen)] = agents.seen.requests
    assert set(seen) <= ALLOWED_UPSTREAM, set(seen) - ALLOWED_UPSTREAM
    text = json.dumps(seen)
    assert token not in text and "caller" not in text and "evil" not in text
    assert seen["a2a-version"] == "1.0" and seen["a2a-extensions"] == "urn:example:ext"
    assert seen["x-request-id"] == "trace-me-1"
    if agent == "legacy":                 # auth none: no Authorization at all
        assert "authorization" not in seen


async def test_identity_assertion_names_the_caller(http: httpx.AsyncClient, world: World,
                                                   agents: Agents) -> None:
    """The helper agent gets a JWT the gateway signed about alice: verifiable with the gateway's key,
    for the agent's URL, short-lived."""
    answer = await http.post(f"{world.url}/agents/helper", json=rpc("GetTask", {"id": "nope"}),
                             headers={"A2A-Version": "1.0"})
    assert answer.status_code == 200
    [(_, seen)] = agents.seen.requests
    scheme, _, assertion = seen["authorization"].partition(" ")
    assert scheme == "Bearer" and assertion != world.tokens["alice"]
    public_key = Sealer(SEALING_KEY).signing_key.public_key()
    claims = jwt.decode(assertion, public_key, algorithms=["ES256"], audience=f"{agents.url}/a2a",
                        issuer=world.url)
    assert claims["sub"] == "user:dev/alice"
    assert 0 < claims["exp"] - claims["iat"] <= 300


async def test_open_redirect_from_the_agent_is_refused(http: httpx.AsyncClient, world: World,
                                                       agents: Agents) -> None:
    answer = await http.post(f"{world.url}/agents/bouncer", json=rpc("SendMessage", message_params("hi")))
    assert answer.status_code == 502
    error = answer.json()["error"]
    assert error["code"] == -32603 and "redirect" in error["message"]
    assert "location" not in answer.headers and "elsewhere" not in answer.text
    assert agents.seen.headers("/bounce") and not agents.seen.headers("/elsewhere")


async def _json_answer(http: httpx.AsyncClient, url: str) -> tuple[httpx.Headers, str]:
    answer = await http.post(f"{url}/agents/helper", json=rpc("SendMessage", message_params("hi")),
                             headers={"A2A-Version": "1.0"})
    return answer.headers, answer.text


async def _stream_answer(http: httpx.AsyncClient, url: str) -> tuple[httpx.Headers, str]:
    body = rpc("SendStreamingMessage", message_params("hi"))
    async with http.stream("POST", f"{url}/agents/helper", json=body,
                           headers={"A2A-Version": "1.0", "Accept": "text/event-stream"}) as answer:
        return answer.headers, (await answer.aread()).decode()


async def _card_answer(http: httpx.AsyncClient, url: str) -> tuple[httpx.Headers, str]:
    answer = await http.get(f"{url}/agents/helper/.well-known/agent-card.json")
    return answer.headers, answer.text


@pytest.mark.parametrize("fetch", [_json_answer, _stream_answer, _card_answer], ids=["json", "sse", "card"])
async def test_hostile_agent_headers_are_not_relayed(http: httpx.AsyncClient, world: World,
                                                     fetch: Any) -> None:
    """Set-Cookie, a challenge, a Location, a banner and internal headers stay with the gateway."""
    headers, body = await fetch(http, world.url)
    for name in HOSTILE:
        assert "evil" not in headers.get(name, "") and "Hostile" not in headers.get(name, ""), name
    assert "set-cookie" not in headers and "x-agent-internal" not in headers
    assert "evil" not in body
