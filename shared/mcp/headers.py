"""Which headers cross the gateway, each way: allowlists, never denylists.

Outbound, only what the protocol needs (the caller's Authorization, api-key and Cookie are the
gateway's credentials, and a server that received them could replay them wherever the caller's token
is accepted); the gateway's own authentication is added on top. Back to the caller, only the content
type, the protocol version, Retry-After and the session id, sealed: a server's cookies, banners,
WWW-Authenticate or Location never reach the caller.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping

from ..errors import UpstreamError
from . import codes
from .wire import NAME_BEARING, Message

FORWARDED = frozenset({"content-type", "accept", "mcp-protocol-version", "mcp-method", "last-event-id"})
PARAM_PREFIX = "mcp-param-"
MAX_PARAM_HEADERS = 64
RELAYED_TYPES = frozenset({"application/json", "text/event-stream"})
# An upstream session id: visible ASCII (the transport's rule), and short enough to seal.
_SESSION_ID = re.compile(r"^[\x21-\x7e]{1,256}$")


def outbound(headers: Iterable[tuple[str, str]], message: Message | None, *, session: str | None,
             request_id: str, auth: Mapping[str, str]) -> dict[str, str]:
    """The headers sent to the server: the allowlisted ones of the caller (a repeated one joined, as
    HTTP reads it), Mcp-Name only for a method that names something, the unsealed session id, the
    request id, and the gateway's own authentication last."""
    out: dict[str, str] = {}
    params = 0
    named = message is not None and message.method in NAME_BEARING
    for name, value in headers:
        if name.startswith(PARAM_PREFIX):
            params += 1
            if params > MAX_PARAM_HEADERS:
                continue
        elif name not in FORWARDED and not (name == "mcp-name" and named):
            continue
        out[name] = f"{out[name]}, {value}" if name in out else value
    if session is not None:
        out["mcp-session-id"] = session
    out["x-request-id"] = request_id
    out.update(auth)
    return out


def relayed(upstream: Mapping[str, str], seal: Callable[[str], str]) -> dict[str, str]:
    """The server's headers the caller may see; its session id sealed (502 when it is not one)."""
    out: dict[str, str] = {}
    content_type = upstream.get("content-type")
    if content_type is not None and content_type.split(";", 1)[0].strip().lower() in RELAYED_TYPES:
        out["content-type"] = content_type
    for name in ("mcp-protocol-version", "retry-after"):
        value = upstream.get(name)
        if value is not None:
            out[name] = value
    session = upstream.get("mcp-session-id")
    if session is not None:
        if not _SESSION_ID.match(session):
            raise codes.as_jsonrpc(UpstreamError("the MCP server answered a malformed session id (visible "
                                                 "ASCII, at most 256 characters)"))
        out["mcp-session-id"] = seal(session)
    return out
