"""What the plane reads from an MCP message before it forwards anything: one JSON-RPC message (never a
batch), its era, and, in the stateless era, headers that agree with its body.

Two eras are in use. A request whose MCP-Protocol-Version is not one of the handshake-era revisions
(2026-07-28 and later) is stateless: it carries Mcp-Method and, for the name-bearing methods, Mcp-Name,
and both must equal the body. Intermediaries and servers may route on those headers, so a header that
says one tool while the body calls another would let a caller past the tool filter, which reads the
body: the gateway refuses it (-32020). Earlier revisions (initialize, Mcp-Session-Id) carry neither.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import InvalidRequest, JsonRpcError
from ..remote import jsonrpc
from . import codes

HANDSHAKE_VERSIONS = frozenset({"2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"})
NAME_BEARING = {"tools/call": "name", "prompts/get": "name", "resources/read": "uri"}
ROUTING_HEADERS = ("mcp-protocol-version", "mcp-method", "mcp-name")
_BASE64_VALUE = re.compile(r"^=\?base64\?(?P<payload>.*)\?=$")


@dataclass(frozen=True, slots=True)
class Message:
    """One JSON-RPC message from the caller, parsed strictly; `raw` is forwarded unchanged."""

    raw: bytes
    doc: Mapping[str, Any]
    modern: bool                # the stateless era (2026-07-28 and later)

    @property
    def method(self) -> str | None:
        method = self.doc.get("method")
        return method if isinstance(method, str) else None

    @property
    def rpc_id(self) -> Any:
        """The id the caller's client matches the answer by (as sent)."""
        return self.doc.get("id")

    @property
    def echo_id(self) -> str | int | None:
        """The id repeated in the gateway's own errors: `rpc_id` when it is a plain token, else null."""
        return jsonrpc.echoable_id(self.doc)

    @property
    def params(self) -> Mapping[str, Any]:
        params = self.doc.get("params")
        return params if isinstance(params, Mapping) else {}

    @property
    def tool(self) -> str | None:
        """The tool a tools/call names (None when it names none)."""
        name = self.params.get("name") if self.method == "tools/call" else None
        return name if isinstance(name, str) else None


def is_modern(version: str | None) -> bool:
    return version is not None and version not in HANDSHAKE_VERSIONS


def parse(raw: bytes, version: str | None) -> Message:
    """The body as one JSON-RPC message: strict JSON (-32700), an object and no batch (-32600)."""
    message = Message(raw, jsonrpc.load(raw), is_modern(version))
    if "method" in message.doc and message.method is None:
        raise JsonRpcError.of(InvalidRequest("the message's method must be a string"), codes.INVALID_REQUEST,
                              message.echo_id)
    if "params" in message.doc and not isinstance(message.doc["params"], Mapping):
        raise JsonRpcError.of(InvalidRequest("the message's params must be an object"), codes.INVALID_REQUEST,
                              message.echo_id)
    return message


def check_headers(message: Message, headers: list[tuple[str, str]]) -> None:
    """In the stateless era: each routing header once, Mcp-Method equal to the body's method, and
    Mcp-Name equal to the body's named parameter (tools/call and prompts/get: name; resources/read: uri).
    `headers`: the raw (lower-case name, value) pairs, since a folded mapping hides a duplicate."""
    if not message.modern:
        return
    seen = [name for name, _ in headers if name in ROUTING_HEADERS]
    if len(seen) != len(set(seen)):
        raise mismatch(message, "a routing header (MCP-Protocol-Version, Mcp-Method, Mcp-Name) appears twice")
    values = dict(headers)
    if values.get("mcp-method") != message.method:
        raise mismatch(message, "the Mcp-Method header does not match the request body's method")
    key = NAME_BEARING.get(message.method or "")
    if key is None:
        return
    named = message.params.get(key)
    header = values.get("mcp-name")
    if (named is not None or header is not None) and decode_header_value(header) != named:
        raise mismatch(message, f"the Mcp-Name header does not match the request body's {key!r} parameter")


def mismatch(message: Message, text: str) -> JsonRpcError:
    return JsonRpcError(text, rpc_code=codes.HEADER_MISMATCH, status=400, code="invalid_request",
                        rpc_id=message.echo_id)


def decode_header_value(value: str | None) -> str | None:
    """A header value as MCP clients encode it: verbatim, or `=?base64?<utf-8 bytes>?=` for values that
    are not plain ASCII. A malformed encoding decodes to None, which equals no body value."""
    if value is None:
        return None
    found = _BASE64_VALUE.fullmatch(value)
    if found is None:
        return value
    try:
        decoded = base64.b64decode(found.group("payload"), validate=True)
        return decoded.decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
