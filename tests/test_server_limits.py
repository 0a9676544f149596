"""Slow and greedy clients against the local host (`python -m shared serve`): header, body and
keep-alive deadlines, the cap on the request head and on open connections, as a client sees them.

The deadlines are short here (settings), so each attack plays out in a few seconds."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest

from tests.harness import GatewayProcess, NewWorld, World, gateway_env, parse_answer

HEADER_TIMEOUT = 2.0
BODY_TIMEOUT = 1.5
KEEPALIVE = 1.0
MAX_HEADER_BYTES = 4096
SLACK = 3.0        # two shared cores: generous, but far below "never"
LIMITS = {"GATEWAY_SERVER_HEADER_TIMEOUT_SECONDS": str(HEADER_TIMEOUT),
          "GATEWAY_SERVER_BODY_TIMEOUT_SECONDS": str(BODY_TIMEOUT),
          "GATEWAY_SERVER_KEEPALIVE_SECONDS": str(KEEPALIVE),
          "GATEWAY_SERVER_MAX_HEADER_BYTES": str(MAX_HEADER_BYTES)}


@pytest.fixture(scope="module")
def world(new_world: NewWorld) -> Iterator[World]:
    with new_world(env=LIMITS) as world:
        yield world


async def read_until_closed(reader: asyncio.StreamReader, limit: float) -> tuple[bytes, float]:
    """Everything the server sends until it closes, and when it closed (seconds from now)."""
    started, out = time.monotonic(), b""
    async with asyncio.timeout(limit):
        try:
            while chunk := await reader.read(65536):
                out += chunk
        except ConnectionResetError:
            pass
    return out, time.monotonic() - started


def status_of(answer: bytes) -> int:
    return parse_answer(answer).status


def error_code(answer: bytes) -> str:
    return str(parse_answer(answer).error()["code"])


async def real_requests_succeed(gw: GatewayProcess, token: str) -> float:
    """GET /health and a token-authenticated GET /v1/models; returns the slower one's seconds."""
    slowest = 0.0
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        for path, headers in (("/health", {}), ("/v1/models", {"Authorization": f"Bearer {token}"})):
            started = time.monotonic()
            async with session.get(gw.url + path, headers=headers) as response:
                assert response.status == 200, await response.text()
                body = await response.json()
            slowest = max(slowest, time.monotonic() - started)
            if path == "/v1/models":
                assert "gpt-4o" in {m["id"] for m in body["data"]}
    return slowest


async def test_attack_slow_loris_idle_and_trickled_heads_are_closed(world: World) -> None:
    """500 connections: 400 send nothing, 100 trickle a request head a byte at a time. Real requests
    are served promptly meanwhile; every attacker is gone after the header deadline (408 for those
    that sent something)."""
    gw = world.gw
    opened = [await asyncio.open_connection("127.0.0.1", gw.port) for _ in range(500)]
    head = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 200

    async def trickle(writer: asyncio.StreamWriter) -> None:
        for byte in head:
            writer.write(bytes([byte]))
            await asyncio.sleep(0.2)

    trickles = [asyncio.create_task(trickle(w)) for _, w in opened[400:]]
    try:
        assert await real_requests_succeed(gw, world.token) < SLACK
        outcomes = await asyncio.gather(*(read_until_closed(r, HEADER_TIMEOUT + 2 * SLACK)
                                          for r, _ in opened))
    finally:
        for task in trickles:
            task.cancel()
        for _, writer in opened:
            writer.close()
    silent, trickled = outcomes[:400], outcomes[400:]
    assert all(answer == b"" for answer, _ in silent)
    assert all(status_of(answer) == 408 and error_code(answer) == "request_timeout" for answer, _ in trickled)
    assert max(when for _, when in outcomes) < HEADER_TIMEOUT + SLACK
    assert await real_requests_succeed(gw, world.token) < SLACK


async def test_attack_idle_keepalive_connection_is_closed(world: World) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", world.port)
    try:
        writer.write(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        answer, closed_after = await read_until_closed(reader, KEEPALIVE + SLACK)
    finally:
        writer.close()
    assert status_of(answer) == 200 and b"connection: close" not in answer.lower()
    assert closed_after >= KEEPALIVE * 0.9


@pytest.mark.parametrize("complete", [True, False], ids=["whole-head", "head-never-ends"])
async def test_attack_oversized_request_head_gets_431(world: World, complete: bool) -> None:
    head = (b"GET /v1/models HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer " + world.token.encode()
            + b"\r\nX-Padding: " + b"p" * (MAX_HEADER_BYTES + 100))
    reader, writer = await asyncio.open_connection("127.0.0.1", world.port)
    try:
        writer.write(head + (b"\r\n\r\n" if complete else b""))
        answer, closed_after = await read_until_closed(reader, SLACK)
    finally:
        writer.close()
    assert status_of(answer) == 431 and error_code(answer) == "request_header_fields_too_large"
    assert closed_after < HEADER_TIMEOUT        # at once, not at the header deadline


async def test_a_head_under_the_cap_is_served(world: World) -> None:
    async with aiohttp.ClientSession() as session, session.get(
            world.url + "/health", headers={"X-Padding": "p" * (MAX_HEADER_BYTES // 2)}) as response:
        assert response.status == 200


async def test_attack_stalled_body_gets_408(world: World) -> None:
    body = json.dumps({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}).encode()
    head = (b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer "
            + world.token.encode() + b"\r\nContent-Type: application/json\r\nContent-Length: "
            + str(len(body)).encode() + b"\r\n\r\n")
    reader, writer = await asyncio.open_connection("127.0.0.1", world.port)
    try:
        writer.write(head + body[:10])          # then nothing
        answer, closed_after = await read_until_closed(reader, BODY_TIMEOUT + SLACK)
    finally:
        writer.close()
    assert status_of(answer) == 408 and error_code(answer) == "request_timeout"
    assert BODY_TIMEOUT * 0.9 <= closed_after < BODY_TIMEOUT + SLACK
    await asyncio.sleep(0.5)                    # the handler's end is logged after the answer
    logs = world.logs()
    assert "408 the request body made no progress" in logs and "Traceback" not in logs


async def test_a_slow_body_that_keeps_coming_is_served(world: World) -> None:
    """The body deadline is for a body that stops, not for a slow one: pieces every BODY_TIMEOUT / 3,
    for longer than BODY_TIMEOUT in all."""
    body = json.dumps({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}).encode()

    async def pieces() -> Any:
        for i in range(0, len(body), len(body) // 5 + 1):
            yield body[i:i + len(body) // 5 + 1]
            await asyncio.sleep(BODY_TIMEOUT / 3)

    async with aiohttp.ClientSession() as session, session.post(
            world.url + "/v1/chat/completions", data=pieces(),
            headers={"Authorization": f"Bearer {world.token}", "Content-Type": "application/json"}) as r:
        assert r.status == 200, await r.text()


async def test_attack_connections_over_the_cap_are_refused(
        world: World, tmp_path_factory: pytest.TempPathFactory) -> None:
    """With room for 20 connections, the 21st is closed before anything is read; once the idle ones
    are past the header deadline, requests are served again."""
    env = gateway_env(world.tables, **LIMITS, GATEWAY_SERVER_MAX_CONNECTIONS="20")
    gw = GatewayProcess(env, tmp_path_factory.mktemp("gw-cap") / "gateway.log")
    try:
        await asyncio.sleep(0.5)   # the start-up probe's connection is gone
        held = [await asyncio.open_connection("127.0.0.1", gw.port) for _ in range(20)]
        reader, writer = await asyncio.open_connection("127.0.0.1", gw.port)
        writer.write(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        answer, closed_after = await read_until_closed(reader, SLACK)
        writer.close()
        assert answer == b"" and closed_after < 1.0
        await asyncio.gather(*(read_until_closed(r, HEADER_TIMEOUT + SLACK) for r, _ in held))
        for _, w in held:
            w.close()
        assert await real_requests_succeed(gw, world.token) < SLACK
        assert "GATEWAY_SERVER_MAX_CONNECTIONS" in gw.logs()
    finally:
        gw.stop()
