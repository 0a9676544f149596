"""Proxy hygiene as a caller and the upstream see it: what is refused, what is never passed
on, the body cap, and the request id that ties the three together."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import aiohttp
import openai
import pytest

from shared.settings import load
from tests.harness import EMULATOR_KEY, NewWorld, World, raw_request_async

LIMIT = 65536
MESSAGES = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def world(new_world: NewWorld) -> Iterator[World]:
    with new_world(env={"GATEWAY_MAX_BODY_BYTES": str(LIMIT), "GATEWAY_ADMINS": "user:dev/alice"}) as world:
        yield world


def request_bytes(world: World, *headers: bytes, body: bytes = b"", length: bool = True) -> bytes:
    lines = [b"POST /v1/chat/completions HTTP/1.1", b"Host: 127.0.0.1",
             b"Authorization: Bearer " + world.token.encode(), b"Content-Type: application/json",
             *headers]
    if length:
        lines.append(b"Content-Length: " + str(len(body)).encode())
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


CHAT = json.dumps({"model": "gpt-4o", "messages": MESSAGES}).encode()


@pytest.mark.parametrize("header", [
    b"X-Note: a\rb", b"X-Note: a\x00b", b"X-Note: a\nInjected: yes",
], ids=["CR", "NUL", "LF"])
async def test_control_characters_in_header_values_are_refused(world: World,
                                                               header: bytes) -> None:
    before = len(world.emulator.requests)
    response = await raw_request_async(world.port, request_bytes(world, header, body=CHAT))
    assert response.status == 400       # the server (httptools) refuses a bare LF too
    assert len(world.emulator.requests) == before


@pytest.mark.parametrize("framing", [
    (b"Transfer-Encoding: chunked", b"Content-Length: 5"),
    (b"Content-Length: 5", b"Content-Length: 6"),
    (b"Transfer-Encoding: gzip, chunked",),
], ids=["TE+CL", "two-CL", "TE-not-chunked-only"])
async def test_conflicting_body_framing_is_refused(world: World, framing: tuple[bytes, ...]) -> None:
    before = len(world.emulator.requests)
    chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(CHAT), CHAT)
    request = request_bytes(world, *framing, body=chunked, length=False)
    response = await raw_request_async(world.port, request)
    assert response.status in (400, 501)
    assert len(world.emulator.requests) == before


async def test_a_declared_oversized_body_is_refused_before_it_is_sent(world: World) -> None:
    """Content-Length of 1 GB and no body at all: the answer comes without waiting for it."""
    head = request_bytes(world, b"Content-Length: 1000000000", length=False)
    response = await raw_request_async(world.port, head)
    assert response.status == 413
    assert response.error()["code"] == "request_too_large"


async def test_a_chunked_oversized_body_is_refused(world: World) -> None:
    async def body() -> Any:
        for _ in range(LIMIT // 1024 + 10):
            yield b" " * 1024

    before = len(world.emulator.requests)
    async with aiohttp.ClientSession() as session, session.post(
            world.url + "/v1/chat/completions", data=body(),
            headers={"Authorization": f"Bearer {world.token}"}) as r:
        assert r.status == 413 and (await r.json())["error"]["code"] == "request_too_large"
        assert "content-length" not in r.request_info.headers
    assert len(world.emulator.requests) == before


def test_the_default_body_limit_fits_images() -> None:
    assert load({"GATEWAY_TABLES_CONNECTION": "UseDevelopmentStorage=true"}).max_body_bytes >= 20 * 2**20


def test_hop_by_hop_credentials_and_identity_headers_stay_at_the_gateway(world: World) -> None:
    sent = {"Connection": "keep-alive, X-Hop", "X-Hop": "1", "Keep-Alive": "timeout=5",
            "Proxy-Authorization": "Basic cHJveHk6cHc=", "TE": "trailers", "Trailer": "X-Checksum",
            "Upgrade": "h2c", "Cookie": "session=abc", "X-MS-CLIENT-PRINCIPAL-NAME": "admin@contoso.com",
            "X-MS-CLIENT-PRINCIPAL": "eyJhZG1pbiI6dHJ1ZX0=", "X-Forwarded-For": "10.0.0.1",
            "X-Forwarded-Host": "evil.example", "Forwarded": "for=10.0.0.1", "X-Original-URL": "/manage"}
    with openai.OpenAI(base_url=world.url + "/v1", api_key=world.token,
                       default_headers=sent) as client:
        answer = client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert answer.choices[0].message.content.endswith("You said: hi")
    seen = world.emulator.requests[-1].headers
    assert not {name.lower() for name in sent} & set(seen)
    assert "authorization" not in seen and seen["api-key"] == EMULATOR_KEY
    assert world.token not in json.dumps(seen)


def test_a_second_token_is_refused(world: World) -> None:
    with openai.OpenAI(base_url=world.url + "/v1", api_key=world.token, max_retries=0,
                       default_headers={"api-key": world.token}) as client, \
            pytest.raises(openai.AuthenticationError):
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES)


@pytest.mark.parametrize("given", [None, "bad id with spaces", "x" * 129, "colon:not-allowed",
                                   "semi;colon"])
def test_a_request_id_is_made_when_none_usable_is_given(world: World, given: str | None) -> None:
    headers = {"x-request-id": given} if given else {}
    with openai.OpenAI(base_url=world.url + "/v1", api_key=world.token,
                       default_headers=headers) as client:
        raw = client.chat.completions.with_raw_response.create(model="gpt-4o", messages=MESSAGES)
    made = raw.headers["x-request-id"]
    assert made != given and re.fullmatch(r"[0-9a-f]{32}", made)
    seen = world.emulator.requests[-1].headers
    assert seen["x-request-id"] == made and seen["x-ms-client-request-id"] == made


def test_a_given_request_id_is_passed_on_and_echoed_on_errors_too(world: World) -> None:
    with openai.OpenAI(base_url=world.url + "/v1", api_key=world.token, max_retries=0,
                       default_headers={"x-request-id": "trace-42.a_b"}) as client:
        raw = client.chat.completions.with_raw_response.create(model="gpt-4o", messages=MESSAGES)
        assert raw.headers["x-request-id"] == "trace-42.a_b"
        assert world.emulator.requests[-1].headers["x-request-id"] == "trace-42.a_b"
        with pytest.raises(openai.NotFoundError) as caught:
            client.chat.completions.create(model="no-such-model", messages=MESSAGES)
    assert caught.value.response.headers["x-request-id"] == "trace-42.a_b"


async def test_the_management_api_refuses_ambiguous_framing_too(world: World) -> None:
    """Framing is checked where every body is read, not only on the data plane (the HTTP server lets
    "gzip, chunked" through; it refuses Content-Length with Transfer-Encoding itself)."""
    body = b"{}"
    request = (b"PUT /manage/workspaces/smuggled HTTP/1.1\r\nHost: 127.0.0.1\r\n"
               b"Authorization: Bearer " + world.token.encode() + b"\r\n"
               b"Content-Type: application/json\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
               b"2\r\n" + body + b"\r\n0\r\n\r\n")
    assert (await raw_request_async(world.port, request)).status == 400
    check = (b"GET /manage/workspaces/smuggled HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
             b"Authorization: Bearer " + world.token.encode() + b"\r\n\r\n")
    assert (await raw_request_async(world.port, check)).status == 404      # nothing was written
