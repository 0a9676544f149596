"""Relays an upstream event stream to the caller chunk by chunk, and charges its usage however it ends.

Bytes pass on as they arrive, untouched unless the gateway injected include_usage (then each complete
event is passed on as soon as it completes, minus what the injection added). A failure mid-stream ends
the caller's stream with a final SSE `event: error` and closes the upstream socket.

A caller that stops reading (disconnects, even right after the last chunk it wanted) must not make the
stream free: the usage comes at the very end, after the content. So the rest of the upstream stream is
read in the background, discarded and scanned for the usage, for at most DRAIN_SECONDS; then the usage
is charged and the socket released (read to its end) or closed. Whatever happens, usage is charged
once, the span ends once, and the socket is given back once.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from opentelemetry.trace import Span, StatusCode

from ..errors import UpstreamError
from ..telemetry import TIME_TO_FIRST_TOKEN
from .outbound import Outbound, UsageSink, charge
from .usage_scan import EventScanner, strip_null_usage

if TYPE_CHECKING:
    import aiohttp

log = logging.getLogger("gateway.upstream.relay")

DRAIN_SECONDS = 2.0
"""How long a stream whose caller left is still read, to learn its usage."""

_RELAYING, _DRAINING, _DONE = 0, 1, 2


class Relay:
    """One upstream event stream: `chunks()` for the caller, `close()` once the caller's side is over."""

    __slots__ = ("_account", "_drains", "_injected", "_labels", "_out", "_resp", "_scanner", "_sent",
                 "_sink", "_span", "_state")

    def __init__(self, resp: aiohttp.ClientResponse, out: Outbound, account: str, sink: UsageSink | None,
                 injected: bool, span: Span, labels: dict[str, str], sent: float,
                 drains: set[asyncio.Task[None]]) -> None:
        self._resp, self._out, self._account, self._sink = resp, out, account, sink
        self._injected, self._span, self._labels, self._sent = injected, span, labels, sent
        self._drains = drains
        self._scanner = EventScanner()
        self._state = _RELAYING

    async def chunks(self) -> AsyncIterator[bytes]:
        import aiohttp

        scanner, injected = self._scanner, self._injected
        scanning, first = self._sink is not None or injected, True
        try:
            async for chunk in self._resp.content.iter_any():
                if first:
                    first = False
                    self._first_chunk()
                if not scanning:
                    yield chunk
                    continue
                events = scanner.feed(chunk)
                if not injected:
                    yield chunk
                    for event in events:
                        scanner.usage_of(event)
                    if scanner.overlong():
                        scanner.rest()
                    continue
                out = [strip_null_usage(event) for event in events if not scanner.usage_of(event)[1]]
                if out:
                    yield b"".join(out)
                if scanner.overlong():
                    yield scanner.rest()
            tail = scanner.rest() if injected else b""
            self._finish(completed=True)
            if tail:
                yield tail
        except (TimeoutError, aiohttp.ClientError) as exc:
            log.warning("request %s: stream from %s broke off: %s", self._out.request_id, self._account,
                        type(exc).__name__)
            self._span.set_status(StatusCode.ERROR, "upstream stream broke off")
            unfinished = bool(scanner.rest()) and not injected
            self._finish(completed=False)
            error = UpstreamError(f"the upstream stream from account {self._account} broke off")
            # An unfinished event already passed on is closed first, so the error event stands alone.
            yield (b"\n\n" if unfinished else b"") + b"event: error\ndata: " + \
                json.dumps(error.body()).encode() + b"\n\n"
        finally:
            self.close()

    def close(self) -> None:
        """The caller's side is over. A stream not yet read to its end is drained in the background
        when its usage is wanted, else closed."""
        if self._state != _RELAYING:
            return
        if self._sink is None:
            self._finish(completed=False)
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:            # no loop left to drain in
            self._finish(completed=False)
            return
        self._state = _DRAINING
        self._span.set_attribute("gateway.stream.caller_left", True)
        task = loop.create_task(self._drain(), name="stream-drain")
        self._drains.add(task)
        task.add_done_callback(self._drains.discard)

    async def _drain(self) -> None:
        import aiohttp

        scanner, completed = self._scanner, False
        try:
            async with asyncio.timeout(DRAIN_SECONDS):
                async for chunk in self._resp.content.iter_any():
                    for event in scanner.feed(chunk):
                        scanner.usage_of(event)
                    if scanner.overlong():
                        scanner.rest()
            completed = True
        except (TimeoutError, aiohttp.ClientError) as exc:
            log.info("request %s: stream from %s not drained after its caller left (%s)",
                     self._out.request_id, self._account, type(exc).__name__)
        finally:
            self._finish(completed)

    def _first_chunk(self) -> None:
        TIME_TO_FIRST_TOKEN.record(time.perf_counter() - self._sent, self._labels)
        self._span.add_event("first chunk")

    def _finish(self, completed: bool) -> None:
        """Once: end the span, give the socket back (reusable only when read to its end), charge usage."""
        if self._state == _DONE:
            return
        self._state = _DONE
        self._span.set_attribute("gateway.stream.completed", completed)
        self._span.end()
        if completed:
            self._resp.release()
        else:
            self._resp.close()
        if self._sink is None:
            return
        usage = self._scanner.usage
        if self._scanner.ambiguous:
            usage = None
            log.warning("request %s: the stream from %s gave a usage with a repeated member: its tokens "
                        "are not counted", self._out.request_id, self._account)
        charge(self._sink, self._out, usage)
