"""The local host's connection guard: uvicorn's httptools protocol plus the limits it lacks.

uvicorn closes idle keep-alive connections, but a connection that never finishes its request head is
kept forever, httptools buffers a header of any length, a stalled body holds its request open, and
every connection is accepted. Slow clients (one header byte every few seconds, a body that stops)
would tie up the host. This subclass adds, per connection:

- a header deadline: from connecting (or from a request's first byte on a kept-alive connection) to
  a complete request head; past it the connection gets 408 if it sent anything, else it is just closed;
- a cap on the request head: 431 and close;
- a body deadline: a request whose body makes no progress for that long ends with 408 and close
  (unless the wait is ours: reading paused because the handler has not read yet, or 100-continue
  not yet sent);
- a cap on open connections: one more is closed at once, before anything is read.

One timer handle per connection (uvicorn's keep-alive handle, reused), re-armed when a phase ends
rather than per chunk: the data path pays a clock read and a few attribute updates per chunk.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import httptools
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from .errors import GatewayError, HeadersTooLarge, RequestTimeout

if TYPE_CHECKING:
    import asyncio

    from .settings import Settings

log = logging.getLogger("gateway.server_protocol")

_IDLE, _HEAD, _BODY, _APP, _LINGER = 0, 1, 2, 3, 4   # what the connection waits for (see the class)
_MIN_REARM = 0.01
LINGER_SECONDS = 2.0   # after a 408 or 431: read and drop what the client still sends, then close


@dataclass(frozen=True, slots=True)
class ServerLimits:
    header_timeout: float
    body_timeout: float
    keepalive: float
    max_header_bytes: int
    max_connections: int

    @classmethod
    def from_settings(cls, settings: Settings) -> ServerLimits:
        return cls(header_timeout=settings.server_header_timeout_seconds,
                   body_timeout=settings.server_body_timeout_seconds,
                   keepalive=settings.server_keepalive_seconds,
                   max_header_bytes=settings.server_max_header_bytes,
                   max_connections=settings.server_max_connections)


class _Rejected(Exception):
    """Raised inside a parser callback to stop parsing after the answer was written."""


def error_bytes(error: GatewayError) -> bytes:
    """A complete HTTP/1.1 answer that closes the connection (written before any app is involved)."""
    body = json.dumps(error.body()).encode()
    reason = {408: b"Request Timeout", 431: b"Request Header Fields Too Large"}.get(error.status, b"")
    return (b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"
            b"connection: close\r\n\r\n" % (error.status, reason, len(body))) + body


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """Phases (`_phase`): IDLE waits for a kept-alive connection's next request (keep-alive deadline),
    HEAD for a complete request head (header deadline from `_since`), BODY for body bytes (body
    deadline from `_last_data`), APP for the handler (no deadline here: the app has its own), LINGER
    for the client to read a refusal (closing at once would reset a connection that is still sending,
    and the client might never read why)."""

    limits: ClassVar[ServerLimits]
    _refusals: ClassVar[int] = 0

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.timeout_keep_alive = self.limits.keepalive  # type: ignore[assignment]
        self._phase = _HEAD
        self._since = 0.0           # when the header deadline started
        self._last_data = 0.0       # when the last bytes arrived
        self._got_data = False      # anything received since the header deadline started
        self._head_seen = 0         # bytes received while a head was incomplete (memory bound)
        self._rejected = False

    @classmethod
    def with_limits(cls, limits: ServerLimits) -> type[GuardedHttpToolsProtocol]:
        return type(cls.__name__, (cls,), {"limits": limits})

    # -- connection ------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        if len(self.connections) >= self.limits.max_connections:
            self.transport = transport
            transport.close()
            self._note_refusal()
            return
        super().connection_made(transport)
        self._since = self._last_data = self.loop.time()
        self._arm(self.limits.header_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        self._unset_keepalive_if_required()
        super().connection_lost(exc)

    def _note_refusal(self) -> None:
        cls = type(self)
        cls._refusals += 1
        if cls._refusals == 1 or cls._refusals % 1000 == 0:
            log.warning("connection refused: %d connections are open, the limit "
                        "(GATEWAY_SERVER_MAX_CONNECTIONS); %d refused so far",
                        len(self.connections), cls._refusals)

    # -- data ------------------------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        if self._rejected:
            return                      # lingering after a refusal: dropped
        self._last_data = self.loop.time()
        self._got_data = True
        if self._phase <= _HEAD:
            self._head_seen += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        except httptools.HttpParserError:
            if not self._rejected:
                msg = "Invalid HTTP request received."
                self.logger.warning(msg)
                self.send_400_response(msg)
            return
        if self._phase <= _HEAD and self._head_seen > self.limits.max_header_bytes:
            self._reject(HeadersTooLarge(f"the request head is over {self.limits.max_header_bytes} bytes"))

    def on_message_begin(self) -> None:
        if self._phase != _HEAD:      # on a fresh connection the deadline runs from connecting
            self._phase = _HEAD
            self._since = self.loop.time()
            if self.timeout_keep_alive_task is None:
                self._arm(self.limits.header_timeout)
        super().on_message_begin()

    def on_headers_complete(self) -> None:
        cap = self.limits.max_header_bytes
        if self._head_seen > cap and self._head_size() > cap:
            self._reject(HeadersTooLarge(f"the request head is over {cap} bytes"))
            raise _Rejected
        self._head_seen = 0
        self._phase = _BODY
        super().on_headers_complete()

    def _head_size(self) -> int:
        """Bytes of the request line and headers as parsed (only computed when the head may be over)."""
        return len(self.url) + 16 + sum(len(name) + len(value) + 4 for name, value in self.headers)

    def on_message_complete(self) -> None:
        super().on_message_complete()
        if self.cycle is not None and self.cycle.response_complete:
            self._idle()                 # answered before the body ended: now the body is read too
        else:
            self._phase = _APP

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self.transport.is_closing():
            return
        if self._phase == _APP and self.cycle.response_complete:
            self._idle()                 # nothing pipelined behind it: uvicorn armed the keep-alive timer
        elif self._phase != _APP and self.timeout_keep_alive_task is None:
            self._arm(self.limits.header_timeout)   # a pipelined request started: the next one's deadline

    def _idle(self) -> None:
        self._phase = _IDLE
        self._since = self.loop.time()
        self._got_data = False
        if self.timeout_keep_alive_task is None:
            self._arm(self.limits.keepalive)

    # -- deadlines -------------------------------------------------------------------------------

    def _arm(self, delay: float) -> None:
        self._unset_keepalive_if_required()
        self.timeout_keep_alive_task = self.loop.call_later(max(delay, _MIN_REARM),
                                                            self.timeout_keep_alive_handler)

    def timeout_keep_alive_handler(self) -> None:
        """The one timer of the connection: what to do depends on what it is waiting for."""
        self.timeout_keep_alive_task = None
        if self.transport.is_closing() or self._phase == _APP:
            return
        if self._phase == _LINGER:
            self.transport.close()
            return
        now = self.loop.time()
        if self._phase == _IDLE:
            left = self._since + self.limits.keepalive - now
            if left > 0:
                self._arm(left)
            else:
                self.transport.close()
            return
        if self._phase == _HEAD:
            left = self._since + self.limits.header_timeout - now
            if left > 0:
                self._arm(left)
            elif self._got_data:
                self._reject(RequestTimeout(f"no complete request head within "
                                            f"{self.limits.header_timeout:g} s"))
            else:
                log.debug("closing a silent connection from %s", self._peer())
                self.transport.close()
            return
        self._check_body(now)

    def _check_body(self, now: float) -> None:
        cycle = self.cycle
        ours = self.flow.read_paused or (cycle is not None and cycle.waiting_for_100_continue)
        left = self._last_data + self.limits.body_timeout - now
        if ours or left > 0:
            self._arm(self.limits.body_timeout if ours else left)
            return
        if cycle is not None and not cycle.response_complete:
            started = cycle.response_started
            cycle.disconnected = True          # the handler's receive() ends, its sends are dropped
            cycle.message_event.set()
            if not started:
                self._reject(RequestTimeout(f"the request body made no progress for "
                                            f"{self.limits.body_timeout:g} s"))
                return
        self.transport.close()

    def _reject(self, error: GatewayError) -> None:
        self._rejected = True
        if self.transport.is_closing():
            return
        log.info("%s %s from %s", error.status, error.message, self._peer())
        self.transport.write(error_bytes(error))
        if not self.transport.can_write_eof():
            self.transport.close()
            return
        self.transport.write_eof()      # the answer, then FIN; the client's EOF (or the linger) closes
        self._phase = _LINGER
        self._arm(LINGER_SECONDS)

    def _peer(self) -> str:
        return f"{self.client[0]}:{self.client[1]}" if self.client else "-"
