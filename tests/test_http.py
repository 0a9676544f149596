"""The request wrapper on its own: a tiny real Starlette app whose routes go through `endpoint`."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.responses import JSONResponse, Response
from starlette.routing import Route as StarletteRoute

from shared.errors import Conflict
from shared.http import Call, path_problem, route
from tests.harness import RawAnswer


async def _defect(call: Call) -> Response:
    raise RuntimeError("a bug with a secret-looking detail sk-live-123")


async def _refuse(call: Call) -> Response:
    raise Conflict("already there")


async def _echo(call: Call) -> Response:
    first = await call.json(1024)
    again = await call.json(1024)          # parsed once, read once
    return JSONResponse({"same": first is again, "keys": sorted(first)})


ROUTES = (route("defect", ("GET",), "defect", _defect), route("refuse", ("GET",), "refuse", _refuse),
          route("echo", ("POST",), "echo", _echo))



class Client:
    """Drives the ASGI app directly: one request in, the whole answer out."""

    def __init__(self, app: Starlette) -> None:
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


@pytest.fixture
def client() -> Client:
    return Client(Starlette(routes=[StarletteRoute(r.path, r.handler, methods=list(r.methods))
                                    for r in ROUTES]))


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
