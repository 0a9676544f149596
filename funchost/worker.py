"""The Python 3.13+ "proxy worker" of Azure Functions, as the platform runs it: a gRPC client of the host
that hands every message to the app's pinned `azure_functions_runtime`, the library that runs the app.

Started by the host as `python funchost/worker.py --host H --port P --workerId W --requestId R
--grpcMaxMessageLength N` (or the `--functions-*` spellings) with the app folder as the working
directory. It sends StartStream, answers WorkerStatusRequest itself, forwards every other request to
the library and sends back its response; the process's log records go to the host as RpcLog.
"""

from __future__ import annotations

import argparse
import asyncio
import contextvars
import importlib
import logging
import os
import sys
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CONNECT_SECONDS = 10.0
HANDLERS = {   # StreamingMessage content -> (the library's function, the response's field)
    "worker_init_request": ("worker_init_request", "worker_init_response"),
    "function_environment_reload_request": ("function_environment_reload_request",
                                            "function_environment_reload_response"),
    "functions_metadata_request": ("functions_metadata_request", "function_metadata_response"),
    "function_load_request": ("function_load_request", "function_load_response"),
    "invocation_request": ("invocation_request", "invocation_response"),
}
LEVELS = ((logging.CRITICAL, "Critical"), (logging.ERROR, "Error"), (logging.WARNING, "Warning"),
          (logging.INFO, "Information"), (logging.DEBUG, "Debug"))
_invocation: contextvars.ContextVar[str | None] = contextvars.ContextVar("invocation", default=None)


@dataclass(frozen=True)
class Args:
    host: str
    port: int
    worker_id: str
    request_id: str
    max_message: int


@dataclass
class WorkerRequest:
    """What the library's handlers take: the message and the worker's properties."""

    name: str
    request: Any
    properties: dict[str, Any] = field(default_factory=dict)


def parse_args(argv: list[str] | None = None) -> Args:
    """Both spellings of the host's arguments: the classic ones and the newer `--functions-*`."""
    p = argparse.ArgumentParser(description="Azure Functions Python proxy worker (development)")
    p.add_argument("--host")
    p.add_argument("--port", type=int)
    p.add_argument("--workerId", dest="worker_id")
    p.add_argument("--requestId", dest="request_id")
    p.add_argument("--grpcMaxMessageLength", dest="max_message", type=int)
    p.add_argument("--functions-uri", dest="uri")
    p.add_argument("--functions-worker-id", dest="f_worker_id")
    p.add_argument("--functions-request-id", dest="f_request_id")
    p.add_argument("--functions-grpc-max-message-length", dest="f_max_message", type=int)
    a, _unknown = p.parse_known_args(argv)
    uri = urllib.parse.urlsplit(a.uri) if a.uri else None
    host = a.host or (uri.hostname if uri else None)
    port = a.port or (uri.port if uri else None)
    worker_id, request_id = a.worker_id or a.f_worker_id, a.request_id or a.f_request_id
    if not (host and port and worker_id and request_id):
        p.error("the host's address, a worker id and a request id are required")
    return Args(host, port, worker_id, request_id, a.max_message or a.f_max_message or -1)


class RpcLogHandler(logging.Handler):
    """Every record of the process, as an RpcLog to the host (as the platform's worker does)."""

    def __init__(self, send: Any, protos: Any, request_id: str) -> None:
        super().__init__()
        self._send, self._protos, self._request_id = send, protos, request_id

    def emit(self, record: logging.LogRecord) -> None:
        try:
            rpc = self._protos.RpcLog
            level = next((getattr(rpc, name) for floor, name in LEVELS if record.levelno >= floor),
                         getattr(rpc, "None"))
            user = not record.name.startswith(("azure.functions", "azure_functions", "funchost"))
            log = rpc(level=level, message=self.format(record), category=record.name,
                      log_category=rpc.User if user else rpc.System,
                      invocation_id=_invocation.get() or "")
            self._send(self._protos.StreamingMessage(request_id=self._request_id, rpc_log=log))
        except Exception:
            self.handleError(record)


class Worker:
    """One gRPC stream to the host; each request handled in a task of its own."""

    def __init__(self, args: Args, protos: Any, library: Any) -> None:
        self.args, self.protos, self.library = args, protos, library
        self.loop = asyncio.get_running_loop()
        self.outbox: asyncio.Queue[Any] = asyncio.Queue()
        self.tasks: set[asyncio.Task[None]] = set()

    def send(self, message: Any) -> None:
        """Thread-safe: records are logged from the library's thread pool too."""
        self.loop.call_soon_threadsafe(self.outbox.put_nowait, message)

    async def _outgoing(self) -> Any:
        while True:
            yield await self.outbox.get()

    async def run(self) -> None:
        import grpc

        limit = self.args.max_message
        options = [("grpc.max_receive_message_length", limit), ("grpc.max_send_message_length", limit)]
        target = f"{self.args.host}:{self.args.port}"
        async with grpc.aio.insecure_channel(target, options=options if limit > 0 else None) as channel:
            await asyncio.wait_for(channel.channel_ready(), CONNECT_SECONDS)
            stream = self.protos.FunctionRpcStub(channel).EventStream(self._outgoing())
            self.outbox.put_nowait(self.protos.StreamingMessage(
                request_id=self.args.request_id,
                start_stream=self.protos.StartStream(worker_id=self.args.worker_id)))
            root = logging.getLogger()      # from here on, records go to the host, not the console
            for handler in list(root.handlers):
                root.removeHandler(handler)
            root.addHandler(RpcLogHandler(self.send, self.protos, self.args.request_id))
            async for message in stream:
                if message.WhichOneof("content") == "worker_terminate":
                    return
                task = asyncio.create_task(self.dispatch(message))
                self.tasks.add(task)
                task.add_done_callback(self.tasks.discard)

    async def dispatch(self, message: Any) -> None:
        content = message.WhichOneof("content")
        if content == "worker_status_request":     # answered here, as the platform's worker does
            self.send(self.protos.StreamingMessage(
                request_id=message.request_id, worker_status_response=self.protos.WorkerStatusResponse()))
            return
        if content not in HANDLERS:
            logging.getLogger("funchost.worker").warning("ignoring a %s message", content)
            return
        function, answer = HANDLERS[content]
        if content == "invocation_request":
            _invocation.set(message.invocation_request.invocation_id)
        properties = {"host": self.args.host, "protos": self.protos}
        response = await getattr(self.library, function)(WorkerRequest(content, message, properties))
        self.send(self.protos.StreamingMessage(request_id=self.args.request_id, **{answer: response}))


def _app_on_path() -> None:
    """The app folder first on sys.path (function_app.py is imported by name); this script's folder
    off it, so its modules shadow nothing; the folder holding funchost last, for the protos."""
    here = Path(__file__).resolve().parent
    app = os.environ.get("AzureWebJobsScriptRoot") or os.getcwd()
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != here]
    sys.path.insert(0, app)
    sys.path.append(str(here.parent))


async def main(args: Args) -> None:
    from funchost import protos

    library = importlib.import_module("azure_functions_runtime.handle_event")
    await Worker(args, protos, library).run()


if __name__ == "__main__":
    _app_on_path()
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    try:
        asyncio.run(main(parse_args()))
    except KeyboardInterrupt:
        pass
