"""The JSON-RPC 2.0 envelope the MCP and agent planes both read: one message parsed strictly, the
standard error codes, the id an error may repeat, and an error as a final SSE event.

MCP servers and A2A agents both speak JSON-RPC over HTTP, and both planes forward the caller's bytes
unchanged once they have read them: what they read must be what the server will read (strict JSON,
one object, never a batch), and what they answer on their own must be an error object the caller's
client can match to its request.
"""

from __future__ import annotations

import json
import re
from typing import Any

from .. import strict_json
from ..errors import InvalidRequest, JsonRpcError

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603

_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def echoable_id(doc: Any) -> str | int | None:
    """The request's id when it is safe to repeat in an error: an integer, or a short token of letters,
    digits and `._:-` (what clients generate); anything else is answered with a null id, so no caller
    text of any other shape comes back in the gateway's own words."""
    value = doc.get("id") if isinstance(doc, dict) else None
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and _ID.match(value):
        return value
    return None


def load(raw: bytes) -> dict[str, Any]:
    """The body as one JSON-RPC object: strict JSON (-32700; a duplicate key, NaN or a deep nesting
    would be read differently by the server), an object and never a batch (-32600)."""
    try:
        doc = strict_json.loads(raw, max_depth=strict_json.BODY_DEPTH)
    except strict_json.StrictJSONError as exc:
        refused = InvalidRequest(f"request body is not strict JSON: {exc}")
        raise JsonRpcError.of(refused, PARSE_ERROR) from None
    if isinstance(doc, list):
        raise JsonRpcError.of(InvalidRequest("JSON-RPC batches are not accepted: send one message per "
                                             "request"), INVALID_REQUEST)
    if not isinstance(doc, dict):
        raise JsonRpcError.of(InvalidRequest("request body must be one JSON-RPC message (a JSON object)"),
                              INVALID_REQUEST)
    return doc


def error_event(error: JsonRpcError) -> bytes:
    """`error` as the last event of an SSE answer cut short. The blank lines first end whatever event
    the server left half-written, so the error is read as an event of its own."""
    return b"\n\ndata: " + json.dumps(error.body()).encode() + b"\n\n"
