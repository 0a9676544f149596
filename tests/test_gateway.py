"""End to end over real sockets: the openai SDK -> the gateway (uvicorn) -> the emulator.

The identity provider, the emulator and Azurite are real servers on loopback; the gateway is the
same `python -m shared serve` a user runs.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import openai
import pytest

from sandbox.emulator import AzureOpenAIEmulator
from tests.harness import EMULATOR_KEY, GatewayProcess, NewWorld, Tables, World, sandbox_config

API_VERSION = "2024-10-21"
MESSAGES = [{"role": "user", "content": "How are you today?"}]


@pytest.fixture(scope="module")
def world(new_world: NewWorld) -> Iterator[World]:
    with new_world(env={"GATEWAY_MAX_BODY_BYTES": "65536"},
                   tokens={"alice": {"groups": ["developers", "staff"]}}) as world:
        yield world


@pytest.fixture(scope="module")
def token(world: World) -> str:
    return world.token


def direct_azure(emulator: AzureOpenAIEmulator) -> openai.AzureOpenAI:
    return openai.AzureOpenAI(azure_endpoint=emulator.url, api_key=EMULATOR_KEY, api_version=API_VERSION)


def test_openai_client_gets_the_emulators_answer_byte_for_byte(world: World, token: str) -> None:
    client = openai.OpenAI(base_url=world.url + "/v1", api_key=token)
    through = client.chat.completions.with_raw_response.create(model="gpt-4o", messages=MESSAGES)
    direct = direct_azure(world.emulator).chat.completions.with_raw_response.create(
        model="gpt-4o-dep", messages=MESSAGES)
    assert through.http_response.content == direct.http_response.content
    assert through.parse().choices[0].message.content.startswith("Hello from the emulator")
    assert world.emulator.requests[-1].deployment == "gpt-4o-dep"


def test_openai_client_streams_byte_for_byte(world: World, token: str) -> None:
    client = openai.OpenAI(base_url=world.url + "/v1", api_key=token)
    with client.chat.completions.with_streaming_response.create(
            model="gpt-4o", messages=MESSAGES, stream=True) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        through = b"".join(response.iter_bytes())
    with direct_azure(world.emulator).chat.completions.with_streaming_response.create(
            model="gpt-4o-dep", messages=MESSAGES, stream=True) as response:
        direct = b"".join(response.iter_bytes())
    assert through == direct and through.endswith(b"data: [DONE]\n\n")
    text = "".join(chunk.choices[0].delta.content or "" for chunk in client.chat.completions.create(
        model="gpt-4o", messages=MESSAGES, stream=True) if chunk.choices)
    assert text == "Hello from the emulator. You said: How are you today?"


@pytest.mark.parametrize("style", ["azure_ad_token", "api_key"])
def test_azure_openai_client_with_deployments_route(world: World, token: str, style: str) -> None:
    client = openai.AzureOpenAI(azure_endpoint=world.url, api_version=API_VERSION, **{style: token})
    answer = client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert answer.choices[0].message.content.endswith("You said: How are you today?")
    chunks = list(client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices).startswith("Hello")
    vectors = client.embeddings.create(model="embed", input=["a", "b"])
    assert len(vectors.data) == 2 and len(vectors.data[0].embedding) == 8


def test_azure_v1_route_and_responses(world: World, token: str) -> None:
    client = openai.OpenAI(base_url=world.url + "/openai/v1", api_key=token)
    assert client.chat.completions.create(model="gpt-4o", messages=MESSAGES).choices[0].message.content
    v1 = openai.OpenAI(base_url=world.url + "/v1", api_key=token)
    assert v1.responses.create(model="gpt-4o", input="Say hi").output_text.endswith("Say hi")
    assert v1.embeddings.create(model="embed", input="x").data[0].embedding


async def test_async_clients_stream(world: World, token: str) -> None:
    clients = [openai.AsyncOpenAI(base_url=world.url + "/v1", api_key=token),
               openai.AsyncAzureOpenAI(azure_endpoint=world.url, api_version=API_VERSION,
                                       azure_ad_token=token)]
    for client in clients:
        answer = await client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
        assert answer.choices[0].message.content.startswith("Hello")
        stream = await client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
        parts = [c.choices[0].delta.content or "" async for c in stream if c.choices]
        assert "".join(parts).startswith("Hello from the emulator")
        await client.close()


def test_stream_chunks_arrive_as_they_are_produced(world: World, token: str) -> None:
    """The gateway relays each chunk when it comes, not the whole answer at the end."""
    client = openai.OpenAI(base_url=world.url + "/v1", api_key=token)
    long_prompt = [{"role": "user", "content": " ".join(["word"] * 40)}]
    arrivals = [time.perf_counter() for _ in client.chat.completions.create(
        model="gpt-4o", messages=long_prompt, stream=True)]
    # ~48 chunks at 5 ms each upstream: arrivals must be spread over most of that time
    assert len(arrivals) > 40
    assert arrivals[-1] - arrivals[0] > 0.15


def test_caller_credentials_stay_at_the_gateway(world: World, token: str) -> None:
    client = openai.OpenAI(base_url=world.url + "/v1", api_key=token,
                           default_headers={"x-request-id": "trace-123", "cookie": "session=abc"})
    raw = client.chat.completions.with_raw_response.create(model="gpt-4o", messages=MESSAGES)
    assert raw.headers["x-request-id"] == "trace-123"
    seen = world.emulator.requests[-1].headers
    assert seen["api-key"] == EMULATOR_KEY
    assert "authorization" not in seen and "cookie" not in seen
    assert token not in json.dumps(seen)
    assert seen["x-request-id"] == "trace-123"


async def call(gw: GatewayProcess, method: str, path: str, **kwargs: Any) -> tuple[int, dict[str, str], Any]:
    async with aiohttp.ClientSession() as session, session.request(method, gw.url + path, **kwargs) as r:
        body = await r.read()
        return r.status, dict(r.headers), json.loads(body) if body else None


def chat(model: str = "gpt-4o") -> dict[str, Any]:
    return {"model": model, "messages": MESSAGES}


async def test_no_token_is_401_missing_token(world: World) -> None:
    status, headers, body = await call(world.gw, "POST", "/v1/chat/completions", json=chat())
    assert status == 401 and body["error"]["code"] == "missing_token"
    assert headers["WWW-Authenticate"] == "Bearer"


async def test_bad_signature_is_401_invalid_token(world: World, token: str) -> None:
    head, payload, signature = token.split(".")
    forged = ".".join([head, payload, ("A" if signature[0] != "A" else "B") + signature[1:]])
    status, headers, body = await call(world.gw, "POST", "/v1/chat/completions", json=chat(),
                                       headers={"Authorization": f"Bearer {forged}"})
    assert status == 401 and body["error"]["code"] == "invalid_token"
    assert headers["WWW-Authenticate"].startswith('Bearer error="invalid_token", error_description="')
    assert "signature" in headers["WWW-Authenticate"]
    assert forged not in json.dumps(body) and forged not in headers["WWW-Authenticate"]


async def test_valid_identity_without_a_role_sees_no_model(world: World) -> None:
    outsider = world.idp.mint("mallory", claims={"groups": ["guests"]}, audience="api://ai-gateway")
    auth = {"Authorization": f"Bearer {outsider}"}
    status, _, body = await call(world.gw, "POST", "/v1/chat/completions", json=chat(), headers=auth)
    assert status == 404 and body["error"]["code"] == "model_not_found"
    status, _, body = await call(world.gw, "GET", "/v1/models", headers=auth)
    assert status == 200 and body["data"] == []


async def test_models_lists_exactly_the_granted_models(world: World, token: str) -> None:
    status, _, body = await call(world.gw, "GET", "/v1/models",
                                 headers={"Authorization": f"Bearer {token}"})
    assert status == 200 and [m["id"] for m in body["data"]] == ["embed", "gpt-4o"]


@pytest.mark.parametrize(("path", "payload", "status", "code"), [
    ("/v1/chat/completions", b"not json", 400, "invalid_request"),
    ("/v1/chat/completions", b'{"messages": []}', 400, "invalid_request"),
    ("/v1/chat/completions", b'{"model": "nope", "messages": []}', 404, "model_not_found"),
    ("/v1/chat/completions", b'{"model": "secret-model", "messages": []}', 404, "model_not_found"),
    ("/v1/chat/completions", b'{"model": "gpt-4o", "pad": "' + b"x" * 70000 + b'"}', 413,
     "request_too_large"),
    ("/openai/deployments/gpt-4o/chat/completions", b"{}", 400, "invalid_request"),   # no api-version
])
async def test_request_errors(world: World, token: str, path: str, payload: bytes, status: int,
                              code: str) -> None:
    got, _, body = await call(world.gw, "POST", path, data=payload,
                              headers={"Authorization": f"Bearer {token}",
                                       "Content-Type": "application/json"})
    assert (got, body["error"]["code"]) == (status, code)


async def test_health_needs_no_token(world: World) -> None:
    assert (await call(world.gw, "GET", "/health"))[::2] == (200, {"status": "ok"})


async def test_a_change_is_served_within_the_refresh_interval(world: World, token: str) -> None:
    tables: Tables = world.tables
    auth = {"Authorization": f"Bearer {token}"}
    grant = {"resource": "model:secret-model", "principal": "user:dev/alice", "role": "viewer"}
    base = sandbox_config(world.idp, world.emulator)

    async def models_within(seconds: float, expect: list[str]) -> float:
        started = time.monotonic()
        while True:
            _, _, body = await call(world.gw, "GET", "/v1/models", headers=auth)
            if [m["id"] for m in body["data"]] == expect:
                return time.monotonic() - started
            assert time.monotonic() - started < seconds, f"still {body['data']}"
            await asyncio.sleep(0.05)

    await asyncio.to_thread(tables.apply, {**base, "collaborators": [*base["collaborators"], grant]})
    await models_within(3.0, ["embed", "gpt-4o", "secret-model"])
    await asyncio.to_thread(tables.apply, base)     # revoked again
    await models_within(3.0, ["embed", "gpt-4o"])


def test_logs_never_hold_the_token(world: World, token: str) -> None:
    log = Path(world.gw.log_path).read_text(errors="replace")
    assert "request_id=" in log
    assert token not in log and token.split(".")[2] not in log
