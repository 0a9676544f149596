"""The host's HTTP front end (what the real host serves on port 7071): function routes and the admin API.

An HTTP function's request goes to the worker twice, as the real host sends it to a worker with the
HttpUri capability: its head as an InvocationRequest over gRPC, then the request itself (body streamed)
to the worker's own HTTP server with `x-ms-invocation-id`. The answer is relayed to the client chunk
by chunk as it comes; the InvocationResponse arrives on gRPC.

Admin API (no key, as under Core Tools; the host listens on loopback only):
- `POST /admin/functions/{name}` with `{"input": ...}` runs a non-HTTP function: 202 at once, the
  function runs in the background (a timer gets a TimerInfo that is not past due);
- `GET|POST /admin/warmup` runs the warm-up trigger once per host, waits for it and answers 200; later
  calls answer 200 without running it again;
- `GET /admin/host/status` answers the host's state.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

import aiohttp
from aiohttp import web

from funchost import messages
from funchost.functions import Function
from funchost.link import WorkerGone, WorkerLink
from funchost.routing import RouteTable

log = logging.getLogger("funchost.frontend")
HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding",
                        "upgrade", "proxy-authenticate", "proxy-authorization"})
INVOCATION_HEADER = "x-ms-invocation-id"
STARTED = "funchost.response"        # the request's key for its relayed answer, once begun


def _forwardable(headers: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in headers.items() if k.lower() not in HOP_BY_HOP}


class FrontEnd:
    """Routes each request to its function (or the admin API) and relays the worker's answer."""

    def __init__(self, link: WorkerLink, functions: list[Function], routes: RouteTable,
                 http_uri: str) -> None:
        self.link, self.routes, self.http_uri = link, routes, http_uri.rstrip("/")
        self.by_name = {fn.name.lower(): fn for fn in functions}
        self.warmed = False
        self.background: set[asyncio.Task[Any]] = set()
        self.session: aiohttp.ClientSession | None = None

    def app(self) -> web.Application:
        app = web.Application(client_max_size=0)
        app.router.add_route("POST", "/admin/functions/{name}", self.admin_invoke)
        app.router.add_route("*", "/admin/warmup", self.admin_warmup)
        app.router.add_route("GET", "/admin/host/status", self.admin_status)
        app.router.add_route("*", "/{tail:.*}", self.http_function)
        app.on_cleanup.append(self._close)
        return app

    async def _close(self, _app: web.Application) -> None:
        if self.session is not None:
            await self.session.close()

    def _session(self) -> aiohttp.ClientSession:
        if self.session is None:   # no timeout on the whole answer: a stream lasts as long as it lasts
            self.session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None, connect=10),
                                                 auto_decompress=False)
        return self.session

    async def http_function(self, request: web.Request) -> web.StreamResponse:
        match = self.routes.find(request.method, request.path)
        if match is None:
            return web.Response(status=404)
        fn = self.by_name[match.route.function.lower()]
        invocation_id = messages.new_id()
        head = messages.http_invocation(
            fn, invocation_id, method=request.method, url=str(request.url), headers=request.headers,
            query={k: request.query.getone(k) for k in request.query}, params=match.params)
        invocation = asyncio.create_task(self.link.request(head, "invocation_response", invocation_id))
        try:
            return await self._relay(request, invocation_id)
        finally:
            await self._settle(invocation, fn)

    async def _relay(self, request: web.Request, invocation_id: str) -> web.StreamResponse:
        """The worker's answer, relayed as it comes; a bare 500 when the worker fails before answering
        (as the real host answers); a cut connection when it fails mid-answer."""
        try:
            return await self._stream(request, invocation_id)
        except aiohttp.ClientError as exc:
            log.error("the worker's HTTP answer failed: %s", type(exc).__name__)
            started = request.get(STARTED)
            if started is None or not started.prepared:
                return web.Response(status=500)
            raise

    async def _stream(self, request: web.Request, invocation_id: str) -> web.StreamResponse:
        headers = {**_forwardable(request.headers), INVOCATION_HEADER: invocation_id}
        body = request.content if request.body_exists else None
        async with self._session().request(request.method, self.http_uri + request.raw_path, headers=headers,
                                           data=body, allow_redirects=False) as answer:
            response = request[STARTED] = web.StreamResponse(status=answer.status, reason=answer.reason)
            for name, value in answer.headers.items():
                if name.lower() not in HOP_BY_HOP and name.lower() != "content-length":
                    response.headers.add(name, value)
            if answer.content_length is not None:
                response.content_length = answer.content_length
            await response.prepare(request)
            async for chunk in answer.content.iter_any():
                await response.write(chunk)
            await response.write_eof()
            return response

    async def _settle(self, invocation: asyncio.Task[Any], fn: Function) -> None:
        """The InvocationResponse: a failure is logged (the client already has the worker's answer)."""
        try:
            result = await asyncio.wait_for(invocation, 30)
        except (TimeoutError, WorkerGone) as exc:
            log.error("function %s: no invocation response (%s)", fn.name, type(exc).__name__)
            return
        if result.result.status != result.result.Success:
            log.error("function %s failed: %s", fn.name, result.result.exception.message)

    async def _invoke(self, fn: Function, payload: object) -> None:
        invocation_id = messages.new_id()
        result = await self.link.request(messages.json_invocation(fn, invocation_id, payload),
                                         "invocation_response", invocation_id)
        outcome = "succeeded" if result.result.status == result.result.Success else "failed"
        print(f"Executed 'Functions.{fn.name}' ({outcome}, Id={invocation_id})", flush=True)
        if outcome == "failed":
            print(f"  {result.result.exception.message}", flush=True)

    async def admin_invoke(self, request: web.Request) -> web.Response:
        fn = self.by_name.get(request.match_info["name"].lower())
        if fn is None or fn.trigger == "httpTrigger":
            return web.Response(status=404)
        try:
            body = await request.json()
        except ValueError:
            return web.Response(status=400)
        if not isinstance(body, dict) or not isinstance(body.get("input", ""), str):
            return web.Response(status=400)
        payload = messages.TIMER_DATA if fn.trigger == "timerTrigger" else body.get("input", "")
        task = asyncio.create_task(self._invoke(fn, payload))
        self.background.add(task)
        task.add_done_callback(self.background.discard)
        return web.Response(status=202)

    async def admin_warmup(self, request: web.Request) -> web.Response:
        if request.method not in ("GET", "POST"):
            return web.Response(status=405)
        warmups = [fn for fn in self.by_name.values() if fn.trigger == "warmupTrigger"]
        if not self.warmed:
            self.warmed = True
            for fn in warmups:
                await self._invoke(fn, {})
        return web.Response(status=200)

    async def admin_status(self, _request: web.Request) -> web.Response:
        state = "Error" if self.link.closed.is_set() else "Running"
        return web.json_response({"state": state, "version": messages.HOST_VERSION})
