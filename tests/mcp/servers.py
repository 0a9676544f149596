"""MCP servers built with the official SDK, on loopback, each in a thread of its own: the upstreams of
the MCP plane's tests. Each records the requests that reached it (headers and body), and plays a hostile
server on request (queued faults: a redirect, a refusal of the gateway's credentials, headers it should
not relay, a malformed session id).

`whoami` verifies the gateway's identity assertion as a real server would: keys from the gateway's
/.well-known/jwks.json, `iss` the gateway's public URL, `aud` this server's URL, a short `exp`.
"""

from __future__ import annotations

import asyncio
import collections
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any

import jwt
import uvicorn
from mcp.server.mcpserver import Context, MCPServer

KINDS = {   # name -> (stateless_http, json_response)
    "stateful": (False, False),     # sessions, SSE answers
    "stateless": (True, False),     # no sessions, SSE answers
    "json": (True, True),           # no sessions, JSON answers
}
HOSTILE_HEADERS = [(b"set-cookie", b"upstream_session=stolen; Path=/"), (b"server", b"secret-banner/1.0"),
                   (b"www-authenticate", b'Bearer realm="upstream"'), (b"x-internal-host", b"10.0.0.7"),
                   (b"location", b"https://elsewhere.example/")]


@dataclass(frozen=True)
class Seen:
    method: str
    headers: dict[str, str]
    raw_headers: list[tuple[str, str]]
    body: bytes


class McpUpstream:
    def __init__(self, kind: str, *, issuer: str) -> None:
        self.kind = kind
        self.issuer = issuer              # the gateway's public URL: the assertions' `iss`
        self.jwks_url = ""                # the gateway's keys: set once the gateway runs
        self.seen: list[Seen] = []
        self.faults: collections.deque[str] = collections.deque()
        self.claims: list[dict[str, Any]] = []     # every identity assertion whoami verified
        self.port = 0
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/mcp"

    def _mcp(self) -> MCPServer:
        server = MCPServer(f"docs-{self.kind}")

        @server.tool()
        def search_docs(query: str) -> str:
            return f"docs about {query}"

        @server.tool()
        def get_item(item_id: str) -> str:
            return f"item {item_id}"

        @server.tool()
        def delete_item(item_id: str) -> str:
            return f"deleted {item_id}"

        @server.tool()
        async def wait(seconds: float) -> str:
            await asyncio.sleep(seconds)
            return "waited"

        @server.tool()
        async def count(steps: int, ctx: Context) -> str:
            for step in range(1, steps + 1):
                await ctx.report_progress(step, steps)
                await asyncio.sleep(0.1)
            return f"counted {steps}"

        @server.tool()
        def fail() -> str:
            raise ValueError("this tool always fails")

        @server.tool()
        def whoami(ctx: Context) -> str:
            return self._verify((ctx.headers or {}).get("authorization", ""))

        return server

    def _verify(self, authorization: str) -> str:
        token = authorization.removeprefix("Bearer ")
        key = jwt.PyJWKClient(self.jwks_url).get_signing_key_from_jwt(token)
        claims = jwt.decode(token, key.key, algorithms=["ES256"], audience=self.url, issuer=self.issuer,
                            options={"require": ["exp", "iat", "sub"]})
        self.claims.append(claims)
        return str(claims["sub"])

    async def _app(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self._inner(scope, receive, send)
            return
        body, messages = b"", []
        while True:
            message = await receive()
            messages.append(message)
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        pairs = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]]
        self.seen.append(Seen(scope["method"], dict(pairs), pairs, body))
        fault = self.faults.popleft() if self.faults else None
        if fault in ("redirect", "401", "403"):
            await _answer(send, fault)
            return
        replay = iter(messages)

        async def again() -> Any:
            return next(replay, None) or await receive()

        async def sending(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start" and fault is not None:
                message = _spoil(message, fault)
            await send(message)

        await self._inner(scope, again, sending)

    def start(self) -> McpUpstream:
        stateless, json_response = KINDS[self.kind]
        self._inner = self._mcp().streamable_http_app(stateless_http=stateless, json_response=json_response)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = int(s.getsockname()[1])
        config = uvicorn.Config(self._app, host="127.0.0.1", port=self.port, log_level="warning",
                                interface="asgi3", timeout_graceful_shutdown=1)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True, name=f"mcp-{self.kind}")
        self._thread.start()
        deadline = time.monotonic() + 20
        while not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("the MCP server did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(10)


async def _answer(send: Any, fault: str) -> None:
    if fault == "redirect":
        status, headers = 307, [(b"location", b"http://169.254.169.254/latest/meta-data/")]
    else:
        status, headers = int(fault), [(b"www-authenticate", b'Bearer error="invalid_token"')]
    await send({"type": "http.response.start", "status": status,
                "headers": [*headers, (b"content-length", b"0")]})
    await send({"type": "http.response.body", "body": b""})


def _spoil(message: dict[str, Any], fault: str) -> dict[str, Any]:
    headers = list(message.get("headers", []))
    if fault == "hostile-headers":
        headers += HOSTILE_HEADERS
    elif fault.startswith("session:"):
        headers = [(k, v) for k, v in headers if k.lower() != b"mcp-session-id"]
        headers.append((b"mcp-session-id", fault.removeprefix("session:").encode("latin-1")))
    return {**message, "headers": headers}
