"""The MCP plane's answer when an `oauth` server has no token for the caller: MCP's URL elicitation.

MCP's standard way to say "the user must visit a URL first" is JSON-RPC error -32042 with
`data.elicitations = [{"mode": "url", "elicitationId", "url", "message"}]`; clients that support URL
elicitation show the URL to the user. The gateway's own start route needs the caller's bearer token,
which a browser does not have, so the URL given here is the authorization server's own, minted for this
caller as the start route would (discovery, PKCE, a state sealed to this principal and server). The
answer keeps `data.authorize_url` (the start route) for clients that read it. When the URL cannot be
minted (discovery fails, say), the answer is the plain -32003 with that start route alone.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, Any

from ..errors import GatewayError, JsonRpcError
from ..remote.seal import b64url
from . import codes

if TYPE_CHECKING:
    from ..auth.identities import Principal
    from ..config.model import McpServer
    from ..remote.auth import RemoteAuthProblem
    from ..remote.oauth import OAuthMode

log = logging.getLogger("gateway.mcp.elicitation")

STATUS = 403            # the SDK clients surface a JSON-RPC error body at any 4xx; 403 as before
NO_STORE = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}   # the URL carries a state


async def authorization_required(oauth: OAuthMode | None, server: McpServer, principal: Principal,
                                 problem: RemoteAuthProblem, rpc_id: Any = None) -> JsonRpcError:
    """-32042 with one URL elicitation for this caller; -32003 naming the start route when the
    authorization server's URL cannot be minted."""
    data: dict[str, object] = {"authorize_url": problem.authorize_url}
    url = await _authorization_url(oauth, server, principal)
    if url is None:
        return JsonRpcError(problem.message, rpc_code=codes.UNAUTHORIZED, status=STATUS,
                            code="authorization_required", rpc_id=rpc_id, data=data)
    elicitation = {"mode": "url", "elicitationId": b64url(os.urandom(16)), "url": url,
                   "message": f"Sign in to let the gateway use MCP server {server.name} for you, then "
                              "try again."}
    return JsonRpcError(f"MCP server {server.name} needs your authorization first: open the URL given",
                        rpc_code=codes.URL_ELICITATION_REQUIRED, status=STATUS, code="authorization_required",
                        rpc_id=rpc_id, data={**data, "elicitations": [elicitation]}, headers=dict(NO_STORE))


async def _authorization_url(oauth: OAuthMode | None, server: McpServer, principal: Principal) -> str | None:
    if oauth is None:
        return None
    try:
        return await oauth.start(server, principal)
    except GatewayError as exc:
        log.warning("oauth: no authorization URL for MCP server %s: %s", server.name, exc.message)
        return None
