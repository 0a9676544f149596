"""The request wrapper on its own, through both adapters: a tiny real Starlette app whose routes go
through `endpoint`, and the same table served as raw ASGI (`asgi.RawRoutes`, the local host's)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.responses import JSONResponse, Response
from starlette.routing import Route as StarletteRoute

from shared.asgi import RawRoutes
from shared.errors import Conflict
from shared.http import Call, fallback, path_problem, plain, route
from shared.upstream.answer import Answer
from tests.harness import RawAnswer


@plain
async def _defect(call: Call) -> Response:
    raise RuntimeError("a bug with a secret-looking detail sk-live-123")


@plain
async def _refuse(call: Call) -> Response:
    raise Conflict("already there")


@plain
async def _echo(call: Call) -> Response:
    first = await call.json(1024)
    again = await call.json(1024)          # parsed once, read once
    return JSONResponse({"same": first is again, "keys": sorted(first)})


@plain
async def _answer(call: Call) -> Answer:
    text = f"{call.request.method} {call.request.path_params}"
    return Answer(201, {"Content-Type": "text/plain"}, text.encode())


async def _starlette_only(call: Call) -> Response:
    return Response(b"starlette " + call.request.url.path.encode())


STREAM: dict[str, Any] = {}


@plain
async def _endless(call: Call) -> Answer:
    """A stream that never ends by itself: only the caller leaving stops it."""
    async def chunks() -> AsyncIterator[bytes]:
        n = 0
        while True:
            n += 1
            STREAM["sent"] = n
            yield b"data: %d\n\n" % n
            await asyncio.sleep(0.005)

    def close() -> None:
        STREAM["closed"] = STREAM.get("closed", 0) + 1

    return Answer(200, {"content-type": "text/event-stream"}, chunks=chunks(), close=close)


TABLE = (route("defect", ("GET",), "defect", _defect), route("refuse", ("GET",), "refuse", _refuse),
          route("echo", ("POST",), "echo", _echo), route("stream", ("POST",), "stream", _endless),
          route("things/special", ("GET",), "special", _starlette_only),
          route("things/{name}", ("GET", "POST"), "thing", _answer),
          route("files/{*rest}", ("GET",), "files", _answer))
ROUTES = (*TABLE, fallback(TABLE))



class Client:
    """Drives the ASGI app directly: one request in, the whole answer out."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def request(self, method: str, path: str, body: bytes = b"",
                      headers: dict[str, str] | None = None) -> RawAnswer:
        scope = {"type": "http", "http_version": "1.1", "method": method, "path": path,
                 "raw_path": path.encode(), "query_string": b"", "root_path": "", "scheme": "http",
                 "server": ("gw", 80), "client": ("127.0.0.1", 1),
                 "headers": [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]}
        incoming = [{"type": "http.request", "body": body, "more_body": False}]
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return incoming.pop(0) if incoming else {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        await self.app(scope, receive, send)
        start = sent[0]
        return RawAnswer(start["status"], {k.decode(): v.decode() for k, v in start["headers"]},
                         b"".join(m.get("body", b"") for m in sent[1:]))

    async def get(self, path: str, headers: dict[str, str] | None = None) -> RawAnswer:
        return await self.request("GET", path, headers=headers)

    async def post(self, path: str, content: bytes) -> RawAnswer:
        return await self.request("POST", path, content)


def _starlette() -> Starlette:
    return Starlette(routes=[StarletteRoute(r.path, r.handler, methods=list(r.methods)) for r in ROUTES])


@pytest.fixture(params=["starlette", "raw"])
def client(request: pytest.FixtureRequest) -> Client:
    return Client(_starlette() if request.param == "starlette" else RawRoutes(ROUTES, _starlette()))


@pytest.mark.parametrize(("method", "path", "status", "body"), [
    ("GET", "/things/special", 200, b"starlette /things/special"),   # an earlier route wins
    ("GET", "/things/one", 201, b"GET {'name': 'one'}"),
    ("POST", "/things/two", 201, b"POST {'name': 'two'}"),
    ("HEAD", "/things/three", 201, b"HEAD {'name': 'three'}"),        # a GET route answers HEAD
    ("GET", "/files/a/b/c", 201, b"GET {'rest': 'a/b/c'}"),
    ("PUT", "/things/one", 405, None), ("GET", "/nothing", 404, None),
])
async def test_both_adapters_route_and_answer_alike(client: Client, method: str, path: str, status: int,
                                                    body: bytes | None) -> None:
    answer = await client.request(method, path)
    assert answer.status_code == status and len(answer.headers["x-request-id"]) == 32
    if body is not None:
        assert answer.body == body and answer.headers["content-length"] == str(len(body))


async def test_a_stream_stops_when_its_caller_leaves(client: Client) -> None:
    """The caller is gone after its request (the test client says so at once): the relay stops and the
    answer's close runs, instead of reading an endless stream for nobody."""
    STREAM.clear()
    answer = await asyncio.wait_for(client.request("POST", "/stream"), 5)
    assert answer.status_code == 200 and answer.body.startswith(b"data: 1\n\n")
    assert STREAM["closed"] == 1 and STREAM["sent"] < 50


async def test_a_defect_is_a_logged_500_with_the_request_id(client: Client,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="gateway"):
        answer = await client.get("/defect", headers={"x-request-id": "req-1"})
    assert answer.status_code == 500 and answer.headers["x-request-id"] == "req-1"
    error = answer.json()["error"]
    assert error["code"] == "internal_error" and "req-1" in error["message"]
    assert "sk-live" not in answer.text and "RuntimeError" not in answer.text   # no stack trace to callers
    [failure] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert "req-1" in failure.getMessage() and failure.exc_info is not None   # the traceback is logged


async def test_a_gateway_error_keeps_its_status(client: Client) -> None:
    answer = await client.get("/refuse")
    assert answer.status_code == 409 and answer.json()["error"]["code"] == "conflict"
    assert len(answer.headers["x-request-id"]) == 32


async def test_the_body_is_read_and_parsed_once(client: Client) -> None:
    answer = await client.post("/echo", content=b'{"b": 1, "a": 2}')
    assert answer.json() == {"same": True, "keys": ["a", "b"]}
    too_big = await client.post("/echo", content=b'{"a": "' + b"x" * 2000 + b'"}')
    assert too_big.status_code == 413 and too_big.json()["error"]["code"] == "request_too_large"


@pytest.mark.parametrize(("path", "problem"), [
    (b"/v1/models", None), (b"/", None), (b"/openai/deployments/gpt-4o/chat/completions", None),
    (b"/a/%41b", None),
    (b"v1/models", "must start with '/'"), (b"/a/../b", "dot segment"), (b"/a/.", "dot segment"),
    (b"/a/%2E%2e/b", "encoded"), (b"/a%2fb", "encoded"), (b"/a%5Cb", "encoded"), (b"/a%25", "encoded"),
    (b"/a%0D%0Ab", "encoded"), (b"/a\\b", "backslash"), (b"/a//b", "empty segment"),
    (b"/a/", "empty segment"),
    (b"/a\x00b", "control"), (b"/a\x1bb", "control"), (b"/caf\xc3\xa9", "non-ASCII"),
])
def test_path_problems(path: bytes, problem: str | None) -> None:
    found = path_problem(path)
    assert (found is None) if problem is None else (found is not None and problem in found)
