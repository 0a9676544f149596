"""The host's life: a gRPC server for the worker, the worker process, the start-up handshake, then the
HTTP front end until the worker exits or the host is stopped.

Handshake, in the real host's order: StartStream (worker) -> WorkerInitRequest -> FunctionsMetadataRequest
-> one FunctionLoadRequest per function -> ready. A worker that fails any step, exits or crashes ends
the host with code 1 and the worker's own error, never a silent hang.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from aiohttp import web

from funchost import appconfig, messages, protos
from funchost.frontend import FrontEnd
from funchost.functions import Function, catalog, http_routes
from funchost.link import WorkerGone, WorkerLink

WORKER = Path(__file__).resolve().parent / "worker.py"
MAX_MESSAGE = 2_147_483_647
STARTUP_SECONDS = 60.0          # the platform's limit for a worker's init


class HostError(RuntimeError):
    """The host cannot serve: the message says why (the worker's error when it is the cause)."""


@dataclass(frozen=True, slots=True)
class Ready:
    functions: list[Function]
    http_uri: str


def start_worker(app: appconfig.AppFolder, grpc_port: int) -> subprocess.Popen[bytes]:
    """The worker as the host starts it: its arguments, the app folder as working directory."""
    args = [sys.executable, str(WORKER), "--host", "127.0.0.1", "--port", str(grpc_port),
            "--workerId", str(uuid.uuid4()), "--requestId", str(uuid.uuid4()),
            "--grpcMaxMessageLength", str(MAX_MESSAGE)]
    return subprocess.Popen(args, cwd=app.path, env=app.worker_env(os.environ))  # noqa: S603 - our argv


def _check(status: Any, step: str) -> None:
    if status.status != protos.StatusResult.Success:
        error = status.exception
        raise HostError(f"the worker failed {step}: {error.message}\n{error.stack_trace}")


async def handshake(link: WorkerLink, app: appconfig.AppFolder) -> Ready:
    """StartStream, init, metadata, one load per function; HostError on any failure."""
    await link.started
    init = await link.request(messages.worker_init(str(app.path)), "worker_init_response")
    _check(init.result, "WorkerInitRequest")
    metadata = await link.request(messages.functions_metadata(str(app.path)), "function_metadata_response")
    _check(metadata.result, "FunctionsMetadataRequest (indexing function_app.py)")
    functions = catalog(metadata.function_metadata_results)
    if not functions:
        raise HostError("the worker found no functions in function_app.py")
    for fn in functions:
        loaded = await link.request(messages.function_load(fn), "function_load_response", fn.function_id)
        _check(loaded.result, f"FunctionLoadRequest for {fn.name}")
    http_uri = init.capabilities.get("HttpUri", "")
    if any(fn.trigger == "httpTrigger" for fn in functions) and not http_uri:
        raise HostError("the worker offers no HttpUri: function_app.py must import "
                        "azurefunctions.extensions.http.fastapi (HTTP streaming)")
    return Ready(functions, http_uri)


async def _until_worker_ends(worker: subprocess.Popen[bytes], link: WorkerLink) -> int:
    """The worker's exit code once it exits or closes its stream (-1: closed, still running)."""
    exited = asyncio.ensure_future(asyncio.to_thread(worker.wait))
    closed = asyncio.ensure_future(link.closed.wait())
    try:
        await asyncio.wait({exited, closed}, return_when=asyncio.FIRST_COMPLETED)
        return await asyncio.wait_for(asyncio.shield(exited), 2)
    except TimeoutError:
        return -1
    finally:
        closed.cancel()


async def _startup(link: WorkerLink, app: appconfig.AppFolder, worker: subprocess.Popen[bytes]) -> Ready:
    shake = asyncio.create_task(handshake(link, app))
    ended = asyncio.create_task(_until_worker_ends(worker, link))
    done, _ = await asyncio.wait({shake, ended}, timeout=STARTUP_SECONDS, return_when=asyncio.FIRST_COMPLETED)
    if shake in done and shake.exception() is None:
        ended.cancel()
        return shake.result()
    shake.cancel()
    ended.cancel()
    if shake in done and not isinstance(shake.exception(), WorkerGone):
        raise shake.exception()  # type: ignore[misc]
    if not done:
        raise HostError(f"the worker did not index the app within {STARTUP_SECONDS:.0f} s")
    raise HostError(f"the worker exited during start-up (code {worker.poll()}); its output is above")


async def serve(app: appconfig.AppFolder, port: int, host: str = "127.0.0.1") -> int:
    """Serve until stopped (0) or until the worker ends (1); HostError when start-up fails."""
    link = WorkerLink()
    server = grpc.aio.server(options=[("grpc.max_receive_message_length", MAX_MESSAGE),
                                      ("grpc.max_send_message_length", MAX_MESSAGE)])
    protos.add_FunctionRpcServicer_to_server(link, server)
    grpc_port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    worker = start_worker(app, grpc_port)
    runner: web.AppRunner | None = None
    try:
        ready = await _startup(link, app, worker)
        routes = http_routes(ready.functions, app.route_prefix)
        front = FrontEnd(link, ready.functions, routes, ready.http_uri)
        runner = web.AppRunner(front.app(), access_log=None, handle_signals=False)
        await runner.setup()
        await web.TCPSite(runner, host, port).start()
        names = ", ".join(fn.name for fn in ready.functions)
        print(f"Host ready: {len(ready.functions)} functions loaded ({names}); "
              f"listening on http://{host}:{port}", flush=True)
        code = await _until_worker_ends(worker, link)
        print(f"error: the worker exited (code {code}); the host stops", file=sys.stderr, flush=True)
        return 1
    finally:
        if runner is not None:
            await runner.cleanup()
        _stop(worker)
        await server.stop(grace=0.5)


def _stop(worker: subprocess.Popen[bytes]) -> None:
    if worker.poll() is None:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(3)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
