"""One record per tool call and per agent message: who, what, how it went, how long, and a hash of the
arguments (never their values, which may hold anything a user typed)."""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("gateway.remote.audit")


@dataclass(frozen=True, slots=True)
class RemoteCall:
    kind: str                    # mcp | agent
    target: str                  # the MCP server's or agent's name
    principal: str               # user:<provider>/<unique id>
    method: str                  # the JSON-RPC method (tools/call, SendMessage, message/stream, ...)
    outcome: str                 # ok | error (the server's JSON-RPC error) | refused | timeout | failed
    status: int                  # the HTTP status the caller got
    latency_ms: float
    request_id: str
    tool: str | None = None      # tools/call's tool name
    args_hash: str | None = None
    email: str | None = None
    identities: tuple[str, ...] = ()
    at: float = field(default_factory=time.time)


def args_hash(arguments: Any) -> str:
    """SHA-256 of the arguments' canonical JSON: equal arguments give equal hashes, values stay out."""
    text = json.dumps(arguments, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


class RemoteAudit:
    """Takes records without waiting on storage; where they are kept is the recorder's business."""

    def __init__(self) -> None:
        self._sinks: list[Any] = []

    def add_sink(self, sink: Any) -> None:
        self._sinks.append(sink)

    def record(self, call: RemoteCall) -> None:
        log.info("remote call %s %s %s by %s: %s (%d) in %.1f ms", call.kind, call.target,
                 call.tool or call.method, call.principal, call.outcome, call.status, call.latency_ms,
                 extra={"gateway.request_id": call.request_id})
        for sink in self._sinks:
            try:
                sink(call)
            except Exception:
                log.exception("remote call audit sink failed")

    async def aclose(self) -> None:
        return None
