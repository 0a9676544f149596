"""The local host's raw ASGI adapter of the one request path: routes whose work is `plain` are served
from the ASGI scope, receive and send themselves, without Starlette's router, middleware, Request or
Response (together about a tenth of a proxied request's CPU); every other route goes to Starlette.

The wrapper's logic is not repeated here: `http.serve` runs it for both adapters. What this module
adds is the request view (`AsgiRequest`: headers kept as the server's bytes, the query parsed only if
read), the routing (the route table's order decides, exactly as Starlette would), and the sending of
an `Answer`: its headers encoded once, a body in one message, a stream chunk by chunk as it arrives,
each chunk passed to the server as the same bytes object the upstream gave.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterable
from typing import Any

from starlette.datastructures import Headers, QueryParams
from starlette.requests import ClientDisconnect
from starlette.routing import compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .http import Call, Reply, Route, request_id_of, serve, span_route
from .upstream.answer import Answer

_NO_BODY = (204, 304)
_NO_QUERY = QueryParams(b"")     # immutable: one for every request without a query


class AsgiRequest:
    """What a `plain` handler reads of its request, straight from the ASGI scope."""

    __slots__ = ("_headers", "_query", "receive", "scope")

    def __init__(self, scope: Scope, receive: Receive) -> None:
        self.scope = scope
        self.receive = receive
        self._headers: Headers | None = None
        self._query: QueryParams | None = None

    @property
    def method(self) -> str:
        method: str = self.scope["method"]
        return method

    @property
    def headers(self) -> Headers:
        if self._headers is None:
            self._headers = Headers(raw=self.scope["headers"])
        return self._headers

    @property
    def query_params(self) -> QueryParams:
        if self._query is None:
            query = self.scope["query_string"]
            self._query = QueryParams(query) if query else _NO_QUERY
        return self._query

    @property
    def path_params(self) -> dict[str, str]:
        params: dict[str, str] = self.scope.get("path_params", {})
        return params

    async def stream(self) -> Any:
        """The body's chunks as they arrive; the client leaving (or the host's body deadline) is
        Starlette's ClientDisconnect, as on the other adapter."""
        while True:
            message = await self.receive()
            if message["type"] == "http.disconnect":
                raise ClientDisconnect()
            body = message.get("body", b"")
            if body:
                yield body
            if not message.get("more_body", False):
                return


def raw_headers(headers: dict[str, str]) -> list[tuple[bytes, bytes]]:
    return [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers.items()]


async def send_reply(reply: Reply, scope: Scope, receive: Receive, send: Send) -> None:
    if not isinstance(reply, Answer):
        await reply(scope, receive, send)       # a Starlette Response (errors, non-proxy handlers)
        return
    headers = raw_headers(reply.headers)
    if reply.chunks is None:
        if not (reply.status < 200 or reply.status in _NO_BODY):
            headers.append((b"content-length", b"%d" % len(reply.body)))
        await send({"type": "http.response.start", "status": reply.status, "headers": headers})
        await send({"type": "http.response.body", "body": reply.body})
        return
    try:
        await send({"type": "http.response.start", "status": reply.status, "headers": headers})
        await _relay(reply, receive, send)
    finally:
        if reply.close is not None:
            reply.close()


async def _relay(reply: Answer, receive: Receive, send: Send) -> None:
    """The chunks as they come. The first goes out before anything else is set up; then a watcher of
    `receive` stops the relay when the caller leaves (the server drops sends to a gone client, so
    without it the rest of the stream would be read for nobody)."""
    chunks = reply.chunks
    assert chunks is not None
    iterator = aiter(chunks)
    try:
        first = await anext(iterator)
    except StopAsyncIteration:
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        return
    await send({"type": "http.response.body", "body": first, "more_body": True})
    task = asyncio.current_task()
    assert task is not None
    watcher = asyncio.ensure_future(_left(receive))
    left = False

    def caller_left(done: asyncio.Future[None]) -> None:
        nonlocal left
        if not done.cancelled() and done.exception() is None:
            left = True
            task.cancel()

    watcher.add_done_callback(caller_left)
    try:
        async for chunk in iterator:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
    except asyncio.CancelledError:
        if not left or task.uncancel() > 0:
            raise
    finally:
        watcher.remove_done_callback(caller_left)
        watcher.cancel()


async def _left(receive: Receive) -> None:
    """Returns once the caller has gone (any body still unread is dropped)."""
    message: Message = await receive()
    while message["type"] != "http.disconnect":
        message = await receive()


def raw_endpoint(route: Route) -> ASGIApp:
    """`route`'s work behind `http.serve`, as an ASGI app."""
    work, name, span_name = route.work, route.name, span_route(route.route)
    assert work is not None

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        req = AsgiRequest(scope, receive)
        call = Call(req, request_id_of(req.headers), span_name)  # type: ignore[arg-type]
        await send_reply(await serve(call, name, work, started), scope, receive, send)

    return app


def _methods(route: Route) -> frozenset[str]:
    """As Starlette routes them: a GET route answers HEAD too."""
    return frozenset({*route.methods, "HEAD"} if "GET" in route.methods else route.methods)


class RawRoutes:
    """The ASGI app of the local host: the first route of the table that matches path and method (as
    Starlette picks it) is served raw when its work is plain, else by `starlette`."""

    def __init__(self, routes: Iterable[Route], starlette: Any) -> None:
        self._starlette = starlette
        self._table: list[tuple[re.Pattern[str], frozenset[str], ASGIApp | None]] = [
            (compile_path(r.path)[0], _methods(r), raw_endpoint(r) if r.work is not None else None)
            for r in routes]
        # Fixed paths of plain routes: the table's answer for them is known before any request.
        self._fixed: dict[tuple[str, str], ASGIApp] = {}
        for r in routes:
            if "{" in r.path or r.work is None:
                continue
            for method in _methods(r):
                first = self._first(r.path, method)
                if first is not None and first[0] is not None:
                    self._fixed.setdefault((method, r.path), first[0])
        # Templated plain routes: their fixed prefix says when the table is worth walking.
        self._prefixes = tuple({r.path.partition("{")[0] for r in routes if "{" in r.path and r.work})

    @property
    def routes(self) -> list[Any]:
        """Starlette's routes (every route of the table is one of them)."""
        routes: list[Any] = self._starlette.routes
        return routes

    def _first(self, path: str, method: str) -> tuple[ASGIApp | None, dict[str, str]] | None:
        for regex, methods, app in self._table:
            found = regex.match(path)
            if found is not None and method in methods:
                return app, found.groupdict()
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path, method = scope["path"], scope["method"]
            app = self._fixed.get((method, path))
            if app is not None:
                await app(scope, receive, send)
                return
            if path.startswith(self._prefixes):
                first = self._first(path, method)
                if first is not None and first[0] is not None:
                    scope["path_params"] = first[1]
                    await first[0](scope, receive, send)
                    return
        await self._starlette(scope, receive, send)
