"""The JSON-RPC envelope of the agent plane: the request a caller posts, and the error it gets back.

A2A clients read failures from a JSON-RPC error object, so every failure of `POST /agents/{name}` is
answered in that shape. The HTTP status stays the one the gateway's error family gives it (404, 502,
504, ...), so the access log and metrics read as for any other route; the error object carries the
gateway's own code in `data.gateway_error`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from .. import strict_json
from ..errors import GatewayError, InvalidRequest, RequestTooLarge

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
INTERNAL_ERROR = -32603
GATEWAY_REFUSED = -32000
"""The server-defined code for a refusal of the gateway's (no such agent, no access, ...): A2A's own
codes start at -32001."""

_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


class RpcError(GatewayError):
    """A gateway error answered as a JSON-RPC error response for request `rpc_id`."""

    def __init__(self, error: GatewayError, rpc_code: int, rpc_id: str | int | None = None,
                 data: dict[str, Any] | None = None) -> None:
        super().__init__(error.message, param=error.param, headers=error.headers, public=error.public)
        self.status, self.code, self.type = error.status, error.code, error.type   # the wrapped error's
        self.rpc_code = rpc_code
        self.rpc_id = rpc_id
        self.data = dict(data or {})

    def body(self) -> dict[str, object]:
        error = {"code": self.rpc_code, "message": self.public,
                 "data": {"gateway_error": self.code, **self.data}}
        return {"jsonrpc": "2.0", "id": self.rpc_id, "error": error}


@dataclass(frozen=True, slots=True)
class RpcRequest:
    """A well-formed JSON-RPC 2.0 request object, as parsed (the raw bytes are what is forwarded)."""

    method: str
    rpc_id: str | int | None      # echoed in the gateway's own errors only when it is a plain token
    params: Any
    raw: bytes


def echoable_id(doc: dict[str, Any]) -> str | int | None:
    """The request's id when it is safe to repeat in an error: an integer, or a short token of
    letters, digits and `._:-` (what clients generate); anything else is answered with a null id."""
    value = doc.get("id")
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and _ID.match(value):
        return value
    return None


def parse_request(raw: bytes) -> RpcRequest:
    """The body as one JSON-RPC request (a batch is refused: A2A has none), strict JSON."""
    try:
        doc = strict_json.loads(raw, max_depth=strict_json.BODY_DEPTH)
    except strict_json.StrictJSONError as exc:
        raise RpcError(InvalidRequest(f"request body is not strict JSON: {exc}"), PARSE_ERROR) from None
    if not isinstance(doc, dict):
        raise RpcError(InvalidRequest("request body must be one JSON-RPC request object"), INVALID_REQUEST)
    rpc_id = echoable_id(doc)
    method = doc.get("method")
    if doc.get("jsonrpc") != "2.0" or not isinstance(method, str) or not method:
        raise RpcError(InvalidRequest("request body is not a JSON-RPC 2.0 request ('jsonrpc': '2.0' and "
                                      "a 'method' are required)"), INVALID_REQUEST, rpc_id)
    return RpcRequest(method=method, rpc_id=rpc_id, params=doc.get("params"), raw=raw)


def as_rpc(error: GatewayError, rpc_id: str | int | None = None, **data: Any) -> RpcError:
    """`error` in the JSON-RPC shape: invalid requests as -32600, refusals as -32000, the rest (the
    agent failed, timed out, or cannot be authenticated to) as -32603."""
    if isinstance(error, RpcError):
        return error
    if isinstance(error, InvalidRequest | RequestTooLarge):
        code = INVALID_REQUEST
    elif error.status < 500:
        code = GATEWAY_REFUSED
    else:
        code = INTERNAL_ERROR
    return RpcError(error, code, rpc_id, data)
