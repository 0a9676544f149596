"""The JSON-RPC error codes the MCP plane answers with, and which one each failure of the family becomes.

Standard JSON-RPC codes where one fits; MCP's own -32020 for headers that disagree with the body and
-32042 for a URL the user must open first; the implementation-defined band (-32000..-32019) for the
gateway's own conditions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import GatewayError, JsonRpcError, UpstreamError, UpstreamTimeout
from ..remote.jsonrpc import INVALID_PARAMS, INVALID_REQUEST, PARSE_ERROR

if TYPE_CHECKING:
    from ..remote.client import RemoteFailure

__all__ = ["HEADER_MISMATCH", "INVALID_PARAMS", "INVALID_REQUEST", "NOT_FOUND", "PARSE_ERROR", "SERVER_ERROR",
           "TIMEOUT", "UNAUTHORIZED", "URL_ELICITATION_REQUIRED", "as_jsonrpc", "failed"]

HEADER_MISMATCH = -32020
URL_ELICITATION_REQUIRED = -32042  # the user must open a URL first (authorize the gateway at the server)
SERVER_ERROR = -32000          # the MCP server failed, refused the gateway, or cannot be reached
TIMEOUT = -32001               # the MCP server did not answer within the server's timeout_s
NOT_FOUND = -32004             # no such server (for this caller), or a session that is not theirs
UNAUTHORIZED = -32003          # the caller's token, or the gateway's authorization at the server

_BY_STATUS = {400: INVALID_REQUEST, 401: UNAUTHORIZED, 403: UNAUTHORIZED, 404: NOT_FOUND,
              405: INVALID_REQUEST, 413: INVALID_REQUEST, 504: TIMEOUT}


def as_jsonrpc(error: GatewayError, rpc_id: object = None) -> JsonRpcError:
    """`error` in JSON-RPC's shape, keeping its status, headers and message."""
    return JsonRpcError.of(error, _BY_STATUS.get(error.status, SERVER_ERROR), rpc_id)


def failed(failure: RemoteFailure, rpc_id: object = None) -> JsonRpcError:
    """The server could not be reached, or did not answer in time (its own words never included)."""
    error = UpstreamTimeout if failure.kind == "timeout" else UpstreamError
    return as_jsonrpc(error(f"MCP server: {failure.message}"), rpc_id)
