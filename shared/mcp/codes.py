"""The JSON-RPC error codes the MCP plane answers with, and which one each failure of the family becomes.

Standard JSON-RPC codes where one fits; MCP's own -32020 for headers that disagree with the body;
the implementation-defined band (-32000..-32019) for the gateway's own conditions.
"""

from __future__ import annotations

from ..errors import GatewayError, JsonRpcError

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
INVALID_PARAMS = -32602
HEADER_MISMATCH = -32020
SERVER_ERROR = -32000          # the MCP server failed, refused the gateway, or cannot be reached
TIMEOUT = -32001               # the MCP server did not answer within the server's timeout_s
NOT_FOUND = -32004             # no such server (for this caller), or a session that is not theirs
UNAUTHORIZED = -32003          # the caller's token, or the gateway's authorization at the server

_BY_STATUS = {400: INVALID_REQUEST, 401: UNAUTHORIZED, 403: UNAUTHORIZED, 404: NOT_FOUND,
              405: INVALID_REQUEST, 413: INVALID_REQUEST, 504: TIMEOUT}


def as_jsonrpc(error: GatewayError, rpc_id: object = None) -> JsonRpcError:
    """`error` in JSON-RPC's shape, keeping its status, headers and message."""
    return JsonRpcError.of(error, _BY_STATUS.get(error.status, SERVER_ERROR), rpc_id)
