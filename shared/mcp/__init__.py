"""The MCP plane: MCP servers behind the gateway's identities and roles (docs/mcp-and-agents.md).

    wire       one JSON-RPC message, its era, and headers that must agree with it
    codes      the JSON-RPC error codes, and which one each failure becomes
    headers    the allowlists of headers each way, and the sealed session id
    events     server-sent events split into events and their data
    tools      the tool filter applied to tools/list answers
    relay      an answer streamed (or, for tools/list, filtered) to the caller within the deadline
    handlers   POST and DELETE /mcp/{name}: admit the caller, check, forward, relay, audit
    metadata   the resource metadata (RFC 9728) and the identity-assertion keys
    oauth_routes  a user's OAuth authorization of an MCP server: start, callback, revoke

`ROUTES` is this plane's route table; shared/routes.py composes it with the other planes'.
"""

from __future__ import annotations

from ..http import Route, route
from . import handlers as h
from . import metadata, oauth_routes

ROUTES: tuple[Route, ...] = (
    route("mcp/{name}", ("POST", "DELETE"), "mcp", h.jsonrpc_route(h.mcp)),
    *oauth_routes.ROUTES,
    route(".well-known/oauth-protected-resource/mcp/{name}", ("GET",), "mcp_resource_metadata",
          metadata.protected_resource),
    route(".well-known/jwks.json", ("GET",), "jwks", metadata.jwks),
)
