"""Serves the route table under uvicorn (plain routes as raw ASGI, the rest with Starlette), and runs
the timer's job on its schedule."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from . import logsafe, prewarm, runtime
from .asgi import RawRoutes
from .errors import MethodNotAllowed, to_response
from .http import ALL_METHODS
from .routes import ROUTES

log = logging.getLogger("gateway.server")


async def _timer(interval: float) -> None:
    """Like the Functions timer (not run on startup), minus the lease: this process is the only one."""
    while True:
        await asyncio.sleep(interval)
        try:
            await prewarm.timer_job()
        except Exception:
            log.exception("prewarm failed")


def build_app(*, timer_interval: float = prewarm.INTERVAL_SECONDS) -> RawRoutes:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        task = asyncio.get_running_loop().create_task(_timer(timer_interval), name="prewarm-timer")
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await runtime.shutdown()

    starlette = Starlette(routes=[Route(r.path, endpoint=r.handler, methods=list(r.methods)) for r in ROUTES],
                          lifespan=lifespan, exception_handlers={HTTPException: _unrouted})
    return RawRoutes(ROUTES, starlette)


async def _unrouted(req: Request, exc: Exception) -> Response:
    """Only a method no route table lists (TRACE, PROPFIND, ...) gets past the table's fallback."""
    error = MethodNotAllowed("method not allowed", allow=list(ALL_METHODS))
    return to_response(error, os.urandom(16).hex())


def serve(host: str = "127.0.0.1", port: int = 7071) -> None:
    """uvicorn with the connection guard (`server_protocol`): header, body and keep-alive deadlines,
    caps on the request head and on open connections, from the GATEWAY_SERVER_* settings."""
    import uvicorn

    from .server_protocol import GuardedHttpToolsProtocol, ServerLimits
    from .settings import load

    settings = load()
    limits = ServerLimits.from_settings(settings)
    logging.basicConfig(level=logging.WARNING, handlers=[logsafe.stream_handler()])
    runtime.configure_logging(settings)     # before the first request: the connection guard logs too
    # One log line per request: skip what the format never shows (the logging docs' "Optimization").
    logging._srcfile = None
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    # httptools and uvloop (requirements.txt): h11 alone took a third of the CPU of a proxied request.
    # log_config=None: uvicorn's records go through the root handler above, escaped like ours.
    # proxy_headers=False: nothing here reads the client's address, so X-Forwarded-* is not trusted
    # (and its middleware is one layer less on every request).
    uvicorn.run(build_app(), host=host, port=port, log_level="warning", access_log=False, log_config=None,
                proxy_headers=False,
                lifespan="on", timeout_graceful_shutdown=5, loop="uvloop",
                http=GuardedHttpToolsProtocol.with_limits(limits),
                timeout_keep_alive=max(1, round(limits.keepalive)))
