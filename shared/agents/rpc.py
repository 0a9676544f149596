"""The JSON-RPC request of the agent plane, and the error codes its failures are answered with.

A2A clients read failures from a JSON-RPC error object, so every failure of `POST /agents/{name}` is
answered in that shape (shared/errors.py `JsonRpcError`): the HTTP status stays the one the gateway's
error family gives it (404, 502, 504, ...), and the error object carries the gateway's own code in
`data.gateway_error`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import GatewayError, InvalidRequest, JsonRpcError, RequestTooLarge
from ..remote import jsonrpc

GATEWAY_REFUSED = -32000
"""The server-defined code for a refusal of the gateway's (no such agent, no access, ...): A2A's own
codes start at -32001."""


@dataclass(frozen=True, slots=True)
class RpcRequest:
    """A well-formed JSON-RPC 2.0 request object, as parsed (the raw bytes are what is forwarded)."""

    method: str
    rpc_id: str | int | None      # echoed in the gateway's own errors only when it is a plain token
    params: Any
    raw: bytes


def parse_request(raw: bytes) -> RpcRequest:
    """The body as one JSON-RPC request (a batch is refused: A2A has none), strict JSON."""
    doc = jsonrpc.load(raw)
    rpc_id = jsonrpc.echoable_id(doc)
    method = doc.get("method")
    if doc.get("jsonrpc") != "2.0" or not isinstance(method, str) or not method:
        raise as_rpc(InvalidRequest("request body is not a JSON-RPC 2.0 request ('jsonrpc': '2.0' and "
                                    "a 'method' are required)"), rpc_id)
    return RpcRequest(method=method, rpc_id=rpc_id, params=doc.get("params"), raw=raw)


def as_rpc(error: GatewayError, rpc_id: str | int | None = None) -> JsonRpcError:
    """`error` in the JSON-RPC shape: invalid requests as -32600, refusals as -32000, the rest (the
    agent failed, timed out, or cannot be authenticated to) as -32603."""
    if isinstance(error, InvalidRequest | RequestTooLarge):
        code = jsonrpc.INVALID_REQUEST
    elif error.status < 500:
        code = GATEWAY_REFUSED
    else:
        code = jsonrpc.INTERNAL_ERROR
    return JsonRpcError.of(error, code, rpc_id)
