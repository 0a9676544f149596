"""Proxy hygiene as a caller and the upstream see it: what is refused, what is never passed
on, the body cap, and the request id that ties the three together."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from typing import Any

import aiohttp
import openai
import pytest

from sandbox.azurite import Azurite
from sandbox.emulator import AzureOpenAIEmulator
from sandbox.idp import DevIdentityProvider
from shared.settings import load

from .conftest import EMULATOR_KEY, GatewayProcess, Tables, gateway_env, sandbox_config, unique_prefix

LIMIT = 65536
MESSAGES = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def world(azurite: Azurite, idp: DevIdentityProvider, emulator: AzureOpenAIEmulator,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tables = Tables(azurite, unique_prefix())
    tables.apply(sandbox_config(idp, emulator))
    env = gateway_env(tables, GATEWAY_MAX_BODY_BYTES=str(LIMIT), GATEWAY_ADMINS="user:dev/alice")
    gw = GatewayProcess(env, tmp_path_factory.mktemp("gw") / "gateway.log")
    token = idp.mint("alice", claims={"groups": ["developers"]}, audience="api://ai-gateway")
    yield {"gw": gw, "emulator": emulator, "token": token}
    gw.stop()


async def raw_exchange(gw: GatewayProcess, request: bytes, read_seconds: float = 10.0) -> bytes:
    """Send bytes no well-behaved client would, and read what comes back (until close or deadline)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", gw.port)
    try:
        writer.write(request)
        await writer.drain()
        out = b""
        async with asyncio.timeout(read_seconds):
            while chunk := await reader.read(65536):
                out += chunk
                if b"\r\n\r\n" in out and _complete(out):
                    break
        return out
    finally:
        writer.close()


def _complete(response: bytes) -> bool:
    head, _, body = response.partition(b"\r\n\r\n")
    length = re.search(rb"(?im)^content-length:\s*(\d+)", head)
    return length is not None and len(body) >= int(length[1])


def status_of(response: bytes) -> int:
    return int(response.split(b" ", 2)[1])


def request_bytes(world: dict[str, Any], *headers: bytes, body: bytes = b"", length: bool = True) -> bytes:
    lines = [b"POST /v1/chat/completions HTTP/1.1", b"Host: 127.0.0.1",
             b"Authorization: Bearer " + world["token"].encode(), b"Content-Type: application/json",
             *headers]
    if length:
        lines.append(b"Content-Length: " + str(len(body)).encode())
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


CHAT = json.dumps({"model": "gpt-4o", "messages": MESSAGES}).encode()


@pytest.mark.parametrize("header", [
    b"X-Note: a\rb", b"X-Note: a\x00b", b"X-Note: a\nInjected: yes",
], ids=["CR", "NUL", "LF"])
async def test_control_characters_in_header_values_are_refused(world: dict[str, Any],
                                                               header: bytes) -> None:
    before = len(world["emulator"].requests)
    response = await raw_exchange(world["gw"], request_bytes(world, header, body=CHAT))
    assert status_of(response) == 400       # the server (httptools) refuses a bare LF too
    assert len(world["emulator"].requests) == before


@pytest.mark.parametrize("framing", [
    (b"Transfer-Encoding: chunked", b"Content-Length: 5"),
    (b"Content-Length: 5", b"Content-Length: 6"),
    (b"Transfer-Encoding: gzip, chunked",),
], ids=["TE+CL", "two-CL", "TE-not-chunked-only"])
async def test_conflicting_body_framing_is_refused(world: dict[str, Any], framing: tuple[bytes, ...]) -> None:
    before = len(world["emulator"].requests)
    chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(CHAT), CHAT)
    response = await raw_exchange(world["gw"], request_bytes(world, *framing, body=chunked, length=False))
    assert status_of(response) in (400, 501)
    assert len(world["emulator"].requests) == before


async def test_a_declared_oversized_body_is_refused_before_it_is_sent(world: dict[str, Any]) -> None:
    """Content-Length of 1 GB and no body at all: the answer comes without waiting for it."""
    head = request_bytes(world, b"Content-Length: 1000000000", length=False)
    response = await raw_exchange(world["gw"], head)
    assert status_of(response) == 413
    assert json.loads(response.partition(b"\r\n\r\n")[2])["error"]["code"] == "request_too_large"


async def test_a_chunked_oversized_body_is_refused(world: dict[str, Any]) -> None:
    async def body() -> Any:
        for _ in range(LIMIT // 1024 + 10):
            yield b" " * 1024

    before = len(world["emulator"].requests)
    async with aiohttp.ClientSession() as session, session.post(
            world["gw"].url + "/v1/chat/completions", data=body(),
            headers={"Authorization": f"Bearer {world['token']}"}) as r:
        assert r.status == 413 and (await r.json())["error"]["code"] == "request_too_large"
        assert "content-length" not in r.request_info.headers
    assert len(world["emulator"].requests) == before


def test_the_default_body_limit_fits_images() -> None:
    assert load({"GATEWAY_TABLES_CONNECTION": "UseDevelopmentStorage=true"}).max_body_bytes >= 20 * 2**20


def test_hop_by_hop_credentials_and_identity_headers_stay_at_the_gateway(world: dict[str, Any]) -> None:
    sent = {"Connection": "keep-alive, X-Hop", "X-Hop": "1", "Keep-Alive": "timeout=5",
            "Proxy-Authorization": "Basic cHJveHk6cHc=", "TE": "trailers", "Trailer": "X-Checksum",
            "Upgrade": "h2c", "Cookie": "session=abc", "X-MS-CLIENT-PRINCIPAL-NAME": "admin@contoso.com",
            "X-MS-CLIENT-PRINCIPAL": "eyJhZG1pbiI6dHJ1ZX0=", "X-Forwarded-For": "10.0.0.1",
            "X-Forwarded-Host": "evil.example", "Forwarded": "for=10.0.0.1", "X-Original-URL": "/manage"}
    with openai.OpenAI(base_url=world["gw"].url + "/v1", api_key=world["token"],
                       default_headers=sent) as client:
        answer = client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert answer.choices[0].message.content.endswith("You said: hi")
    seen = world["emulator"].requests[-1].headers
    assert not {name.lower() for name in sent} & set(seen)
    assert "authorization" not in seen and seen["api-key"] == EMULATOR_KEY
    assert world["token"] not in json.dumps(seen)


def test_a_second_token_is_refused(world: dict[str, Any]) -> None:
    with openai.OpenAI(base_url=world["gw"].url + "/v1", api_key=world["token"], max_retries=0,
                       default_headers={"api-key": world["token"]}) as client, \
            pytest.raises(openai.AuthenticationError):
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES)


@pytest.mark.parametrize("given", [None, "bad id with spaces", "x" * 129, "colon:not-allowed",
                                   "semi;colon"])
def test_a_request_id_is_made_when_none_usable_is_given(world: dict[str, Any], given: str | None) -> None:
    headers = {"x-request-id": given} if given else {}
    with openai.OpenAI(base_url=world["gw"].url + "/v1", api_key=world["token"],
                       default_headers=headers) as client:
        raw = client.chat.completions.with_raw_response.create(model="gpt-4o", messages=MESSAGES)
    made = raw.headers["x-request-id"]
    assert made != given and re.fullmatch(r"[0-9a-f]{32}", made)
    seen = world["emulator"].requests[-1].headers
    assert seen["x-request-id"] == made and seen["x-ms-client-request-id"] == made


def test_a_given_request_id_is_passed_on_and_echoed_on_errors_too(world: dict[str, Any]) -> None:
    with openai.OpenAI(base_url=world["gw"].url + "/v1", api_key=world["token"], max_retries=0,
                       default_headers={"x-request-id": "trace-42.a_b"}) as client:
        raw = client.chat.completions.with_raw_response.create(model="gpt-4o", messages=MESSAGES)
        assert raw.headers["x-request-id"] == "trace-42.a_b"
        assert world["emulator"].requests[-1].headers["x-request-id"] == "trace-42.a_b"
        with pytest.raises(openai.NotFoundError) as caught:
            client.chat.completions.create(model="no-such-model", messages=MESSAGES)
    assert caught.value.response.headers["x-request-id"] == "trace-42.a_b"


async def test_the_management_api_refuses_ambiguous_framing_too(world: dict[str, Any]) -> None:
    """Framing is checked where every body is read, not only on the data plane (the HTTP server lets
    "gzip, chunked" through; it refuses Content-Length with Transfer-Encoding itself)."""
    body = b"{}"
    request = (b"PUT /manage/workspaces/smuggled HTTP/1.1\r\nHost: 127.0.0.1\r\n"
               b"Authorization: Bearer " + world["token"].encode() + b"\r\n"
               b"Content-Type: application/json\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
               b"2\r\n" + body + b"\r\n0\r\n\r\n")
    assert status_of(await raw_exchange(world["gw"], request)) == 400
    check = (b"GET /manage/workspaces/smuggled HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
             b"Authorization: Bearer " + world["token"].encode() + b"\r\n\r\n")
    assert status_of(await raw_exchange(world["gw"], check)) == 404      # nothing was written
