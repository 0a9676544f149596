"""An MCP server's answer on its way to the caller, inside the call's deadline.

Streamed chunk by chunk as it arrives (an SSE answer's events reach the caller as the server sends
them), except a successful tools/list answer, which is read whole (capped) to filter its tools. A
deadline passed or a server gone mid-stream ends an event stream with a JSON-RPC error event for the
request, so the client surfaces an error instead of waiting; `finished` learns the outcome however
the answer ends (for the audit).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

from starlette.responses import Response

from ..errors import UpstreamError
from ..remote import jsonrpc
from ..remote.client import RemoteFailure, RemoteReply
from ..upstream.response import RelayedResponse
from . import codes, tools
from .events import data, events

OBSERVE_LIMIT = 1024 * 1024
"""How much of a tools/call answer is kept aside to read its outcome (a larger one counts as ok)."""


class Outcome:
    """Watches an answer pass, to tell the audit `ok` from `error` (a JSON-RPC error, or a tool result
    with isError) without holding the answer back."""

    def __init__(self, rpc_id: Any, sse: bool) -> None:
        self._id = rpc_id
        self._sse = sse
        self._seen = bytearray()
        self._over = False

    def feed(self, chunk: bytes) -> None:
        if not self._over and len(self._seen) + len(chunk) <= OBSERVE_LIMIT:
            self._seen += chunk
        else:
            self._over = True

    def outcome(self) -> str:
        if self._over:
            return "ok"
        text = self._seen.decode("utf-8", errors="replace")
        found = [data(e) for e in events(text + "\n\n")] if self._sse else [text]
        for doc in (_loads(item) for item in found if item):
            if isinstance(doc, dict) and doc.get("id") == self._id and ("result" in doc or "error" in doc):
                result = doc.get("result")
                failed = "error" in doc or (isinstance(result, dict) and result.get("isError") is True)
                return "error" if failed else "ok"
        return "failed"


def _loads(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


async def _within(reply: RemoteReply, deadline: float) -> AsyncIterator[bytes]:
    """The reply's chunks, ended by RemoteFailure("timeout") at the call's deadline."""
    source = reply.chunks()
    try:
        while True:
            try:
                async with asyncio.timeout_at(deadline):
                    chunk = await anext(source)
            except StopAsyncIteration:
                return
            except TimeoutError:
                raise RemoteFailure("timeout", "the server did not finish its answer in time") from None
            yield chunk
    finally:
        await source.aclose()


def streamed(reply: RemoteReply, headers: Mapping[str, str], deadline: float, *, rpc_id: Any,
             watch: Outcome | None, finished: Callable[[str], None]) -> Response:
    sse = reply.content_type == "text/event-stream"
    ended: list[str] = []

    async def chunks() -> AsyncIterator[bytes]:
        try:
            async for chunk in _within(reply, deadline):
                if watch is not None:
                    watch.feed(chunk)
                yield chunk
            ended.append(watch.outcome() if watch is not None else "ok")
        except RemoteFailure as failure:
            ended.append("timeout" if failure.kind == "timeout" else "failed")
            if sse and rpc_id is not None:
                yield jsonrpc.error_event(codes.failed(failure, rpc_id))

    def close() -> None:
        reply.release()
        finished(ended[0] if ended else "failed")

    return RelayedResponse(chunks(), close, status_code=reply.status, headers=dict(headers))


async def filtered(reply: RemoteReply, headers: Mapping[str, str], deadline: float,
                   allows: tools.Allows) -> Response:
    """A successful tools/list answer, read whole and filtered."""
    try:
        async with asyncio.timeout_at(deadline):
            body = await reply.read(tools.LIST_LIMIT)
    except TimeoutError:
        raise RemoteFailure("timeout", "the server did not finish its answer in time") from None
    finally:
        reply.release()
    try:
        if reply.content_type == "text/event-stream":
            body = tools.filter_events(body, allows)
        else:
            body = tools.filter_json(body, allows)
    except tools.Unreadable as exc:
        raise codes.as_jsonrpc(UpstreamError(str(exc))) from None
    return Response(body, status_code=reply.status, headers=dict(headers))
