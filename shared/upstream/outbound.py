"""One caller request as the upstream layer sees it: a single value built once by the HTTP edge.

The edge has already authenticated the caller, checked the operation and parsed the body; what is left
to decide (which target, which credential, how to relay) reads only this record. `principal` is who is
charged for the request's usage and `identity` the metric label of the caller's external identity.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterable, Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from ..config.model import Account, Model, Target

log = logging.getLogger("gateway.upstream.outbound")

# Caller headers worth passing on; everything else (credentials, cookies, identity headers, hop-by-hop
# headers) is dropped.
REQUEST_HEADERS = frozenset({"content-type", "accept", "openai-beta", "x-ms-useragent"})
_REQUEST_HEADER_BYTES = frozenset(name.encode() for name in REQUEST_HEADERS)


class Settlement(Protocol):
    """What an admitted request owes its rate limits and budgets (shared/limits/admission.py's Ticket)."""

    def settle(self, usage: Mapping[str, object] | None) -> None: ...


@dataclass(frozen=True, slots=True)
class Body:
    """A body the gateway wrote for one target (a multipart form): its chunks, their total length and
    its Content-Type."""

    chunks: AsyncIterable[bytes]
    length: int
    content_type: str


BodyFor = Callable[[Account, Target], Body]
"""Writes the body one target gets (called once per attempt, so each attempt has fresh chunks)."""


@dataclass(frozen=True, slots=True)
class Outbound:
    method: str
    operation: str                  # a supported operation (chat/completions, embeddings, ...)
    query: Mapping[str, str]
    headers: Mapping[str, str]      # the caller's, as received; only REQUEST_HEADERS go upstream
    body: bytes                     # the caller's bytes
    doc: Mapping[str, object]       # the same body, parsed
    stream: bool                    # the body asks for `"stream": true`
    model: Model
    principal: str
    identity: str
    request_id: str
    ticket: Settlement | None = None    # settled with the usage when rate limits or budgets apply
    body_for: BodyFor | None = None     # a body written per target (multipart) instead of `body`


UsageSink = Callable[[Outbound, Mapping[str, object] | None], None]
"""Told once per answered request: the request and the usage its answer reported (None when none)."""


def request_headers(out: Outbound) -> dict[str, str]:
    """The headers every target gets before its own credential is added."""
    return passed_headers(out.headers, out.request_id)


def passed_headers(caller: Mapping[str, str], request_id: str) -> dict[str, str]:
    """The caller's headers worth passing on, and the gateway's request id."""
    raw = getattr(caller, "raw", None)     # Starlette's Headers: the server's bytes, decoded only if kept
    if raw is not None:
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in raw if k in _REQUEST_HEADER_BYTES}
    else:
        headers = {k: v for k, v in caller.items() if k.lower() in REQUEST_HEADERS}
    headers.update({"x-request-id": request_id, "x-ms-client-request-id": request_id,
                    "accept-encoding": "identity"})
    return headers


def charge(sink: UsageSink, out: Outbound, usage: Mapping[str, object] | None) -> None:
    """Hands the usage to the sink; a failing sink is logged, never the caller's problem."""
    try:
        sink(out, usage)
    except Exception:
        log.exception("request %s: recording usage failed", out.request_id)
