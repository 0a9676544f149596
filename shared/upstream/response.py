"""The one place an upstream `Answer` becomes a Starlette response, for whichever handler serves it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping

from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from .answer import Answer


class RelayedResponse(StreamingResponse):
    """A streamed answer whose `close` runs however the response ends: completed, the caller gone, or
    never started (Starlette does not close an iterator it never started, nor always one it stopped)."""

    def __init__(self, chunks: AsyncIterator[bytes], close: Callable[[], None] | None, *, status_code: int,
                 headers: Mapping[str, str]) -> None:
        super().__init__(chunks, status_code=status_code, headers=headers)
        self._close = close

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            if self._close is not None:
                self._close()


def to_starlette(answer: Answer) -> Response:
    if answer.chunks is None:
        return Response(answer.body, status_code=answer.status, headers=answer.headers)
    return RelayedResponse(answer.chunks, answer.close, status_code=answer.status, headers=answer.headers)
