"""The host's end of the worker's gRPC stream (FunctionRpc.EventStream): requests out, each response
matched back to the request that awaits it, the worker's logs printed.

One worker, one stream. When the stream ends (the worker exited or crashed) every waiting request
fails with WorkerGone, so nothing waits forever on a dead worker.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc

from funchost import protos

RESPONSES = {   # a response's field -> the field of its request that pairs them ("" for one at a time)
    "worker_init_response": "",
    "function_metadata_response": "",
    "function_load_response": "function_id",
    "invocation_response": "invocation_id",
    "function_environment_reload_response": "",
}
LOG_LEVELS = {getattr(protos.RpcLog, name): name for name in
              ("Trace", "Debug", "Information", "Warning", "Error", "Critical")}


class WorkerGone(RuntimeError):
    """The worker's stream ended before the answer came."""


def print_log(log: Any) -> None:
    """A worker's log line on the host's output, as Core Tools shows them."""
    level = LOG_LEVELS.get(log.level, "None")
    text = log.message.replace("\r", "\\r").replace("\n", "\n    ")
    print(f"[{level}] {log.category}: {text}", file=sys.stdout, flush=True)


class WorkerLink(protos.FunctionRpcServicer):
    """The servicer the worker dials; `request` sends a message and awaits its answer."""

    def __init__(self, on_log: Callable[[Any], None] = print_log) -> None:
        self.on_log = on_log
        self.started: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self.closed = asyncio.Event()
        self._outbox: asyncio.Queue[Any] = asyncio.Queue()
        self._waiting: dict[tuple[str, str], asyncio.Future[Any]] = {}

    async def request(self, message: Any, answer: str, key: str = "") -> Any:
        """Send `message`; return the worker's `answer` message paired with it (by `key`)."""
        if self.closed.is_set():
            raise WorkerGone("the worker is gone")
        waiter = asyncio.get_running_loop().create_future()
        self._waiting[(answer, key)] = waiter
        self._outbox.put_nowait(message)
        try:
            return await waiter
        finally:
            self._waiting.pop((answer, key), None)

    def send(self, message: Any) -> None:
        self._outbox.put_nowait(message)

    async def EventStream(self, request_iterator: AsyncIterator[Any], context: Any) -> AsyncIterator[Any]:
        if self.started.done():
            await context.abort(grpc.StatusCode.ALREADY_EXISTS, "one worker only")
        reader = asyncio.create_task(self._read(request_iterator))
        try:
            while True:
                message = await self._outbox.get()
                if message is None:
                    return
                yield message
        finally:
            reader.cancel()
            self._close()

    async def _read(self, incoming: AsyncIterator[Any]) -> None:
        try:
            async for message in incoming:
                self._receive(message)
        except Exception:   # noqa: S110 - a broken stream is the worker going away: _close says so
            pass
        finally:
            self._close()

    def _receive(self, message: Any) -> None:
        content = message.WhichOneof("content")
        if content == "start_stream":
            if not self.started.done():
                self.started.set_result(message.start_stream.worker_id)
        elif content == "rpc_log":
            self.on_log(message.rpc_log)
        elif content in RESPONSES:
            body = getattr(message, content)
            field = RESPONSES[content]
            waiter = self._waiting.get((content, getattr(body, field) if field else ""))
            if waiter is not None and not waiter.done():
                waiter.set_result(body)

    def _close(self) -> None:
        if self.closed.is_set():
            return
        self.closed.set()
        self._outbox.put_nowait(None)
        if not self.started.done():
            self.started.set_exception(WorkerGone("the worker closed its stream before starting"))
        for waiter in self._waiting.values():
            if not waiter.done():
                waiter.set_exception(WorkerGone("the worker's stream ended"))

