"""An agent's SSE answer relayed to the caller chunk by chunk, as it arrives, never buffered whole.

The caller sees each event as soon as the agent sends it. The audit learns how the stream ended once
it has ended, however it ends: completed (`ok`, or `error` when an event was a JSON-RPC error), broken
off or silent for too long (the caller then gets a final JSON-RPC error event), or abandoned by the
caller (`failed`).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import aclosing
from typing import TYPE_CHECKING, Any

from ..remote import jsonrpc
from ..remote.client import RemoteFailure
from .failures import from_remote, outcome
from .rpc import as_rpc

if TYPE_CHECKING:
    from ..remote.client import RemoteReply

_LINE_MAX = 1024 * 1024


class ErrorSpotter:
    """Notices an event whose data is a JSON-RPC error object, reading the stream line by line (a line
    longer than `_LINE_MAX` is skipped, not kept)."""

    def __init__(self) -> None:
        self.seen = False
        self._partial = b""
        self._skipping = False

    def feed(self, chunk: bytes) -> None:
        if self.seen:
            return
        lines = (self._partial + chunk).split(b"\n")
        self._partial = lines.pop()
        if self._skipping and lines:
            lines.pop(0)
            self._skipping = False
        if len(self._partial) > _LINE_MAX:
            self._partial, self._skipping = b"", True
        self.seen = any(_is_error(line) for line in lines)


def _is_error(line: bytes) -> bool:
    if not line.startswith(b"data:"):
        return False
    try:
        doc = json.loads(line[5:])
    except ValueError:
        return False
    return isinstance(doc, dict) and "error" in doc


class SseRelay:
    """`chunks` for the response, `close` for when it is over; `done(outcome, status)` runs once."""

    def __init__(self, reply: RemoteReply, rpc_id: Any, done: Callable[[str, int], None]) -> None:
        self._reply = reply
        self._rpc_id = rpc_id
        self._done: Callable[[str, int], None] | None = done
        self._outcome = "failed"        # until the agent's stream ends on its own
        self._spotter = ErrorSpotter()

    async def chunks(self) -> AsyncIterator[bytes]:
        try:
            async with aclosing(self._reply.chunks()) as chunks:
                async for chunk in chunks:
                    self._spotter.feed(chunk)
                    yield chunk
            self._outcome = "error" if self._spotter.seen else "ok"
        except RemoteFailure as failure:
            error = as_rpc(from_remote(failure), self._rpc_id)
            self._outcome = outcome(error)
            yield jsonrpc.error_event(error)

    def close(self) -> None:
        self._reply.release()
        done, self._done = self._done, None
        if done is not None:
            done(self._outcome, self._reply.status)
