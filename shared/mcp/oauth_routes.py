"""The routes of per-user OAuth for MCP servers with auth type oauth (the flow is shared/remote/oauth.py).

    GET    /mcp/{name}/oauth/start      the caller's token, viewer on mcp-server:N -> {"authorization_url"}
    GET    /mcp/{name}/oauth/callback   the authorization server's redirect (a browser: no token; bound
                                        by the sealed state) -> "connected"
    DELETE /mcp/{name}/oauth            the caller's token -> 204; forgets the caller's own tokens there

`ROUTES` is this table; the MCP plane composes it with its own.
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING

from starlette.responses import HTMLResponse, JSONResponse, Response

from .. import runtime
from ..callers import authenticate
from ..config.fields import NAME_RE
from ..errors import InvalidRequest, NotFound, Unavailable
from ..http import Call, Route, route

if TYPE_CHECKING:
    from ..config.model import McpServer
    from ..config.snapshot import View
    from ..remote.oauth import OAuthMode

NO_STORE = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}
MAX_PARAM = 4096


def _mode(gw: runtime.Gateway) -> OAuthMode:
    if gw.remote.oauth is None:
        raise Unavailable("per-user OAuth is not available in this process")
    return gw.remote.oauth


def _server(view: View, name: str) -> McpServer:
    server = view.mcp_servers.get(name)
    if server is None:
        raise NotFound("no such MCP server, or you do not have access to it")
    if server.auth.type != "oauth":
        raise InvalidRequest("this MCP server does not use per-user OAuth")
    return server


async def start(call: Call) -> Response:
    gw, view, principal = await authenticate(call)
    name = call.request.path_params["name"]
    if not view.policy.allows(principal.principals, f"mcp-server:{name}", "viewer"):
        raise NotFound("no such MCP server, or you do not have access to it")
    url = await _mode(gw).start(_server(view, name), principal)
    return JSONResponse({"authorization_url": url}, headers=NO_STORE)


def _param(call: Call, name: str) -> str:
    values = call.request.query_params.getlist(name)
    if len(values) != 1 or not values[0] or len(values[0]) > MAX_PARAM:
        raise InvalidRequest(f"the authorization response must carry one {name}")
    return values[0]


async def callback(call: Call) -> Response:
    """No bearer token: the browser comes back from the authorization server. If one is sent anyway,
    it must be the token of the user who started the flow."""
    gw = await runtime.gateway()
    view = await gw.snapshot.current()
    server = _server(view, call.request.path_params["name"])
    if "error" in call.request.query_params:
        raise InvalidRequest("the authorization server did not grant access (declined or failed): "
                             "start again")
    expect = None
    if "authorization" in call.request.headers or "api-key" in call.request.headers:
        expect = (await authenticate(call))[2].user
    user = await _mode(gw).finish(server, _param(call, "code"), _param(call, "state"), expect=expect)
    if "text/html" in call.request.headers.get("accept", ""):
        page = (f"<!doctype html><meta charset=\"utf-8\"><title>Connected</title><p>The gateway can now use "
                f"MCP server <b>{html.escape(server.name)}</b> for {html.escape(user)}. You can close this "
                "window.</p>")
        return HTMLResponse(page, headers={**NO_STORE, "Content-Security-Policy": "default-src 'none'"})
    return JSONResponse({"connected": True, "server": server.name, "principal": user}, headers=NO_STORE)


async def forget(call: Call) -> Response:
    """Idempotent, and the same answer whether or not the server exists or the caller may use it."""
    gw, _, principal = await authenticate(call)
    name = call.request.path_params["name"]
    if NAME_RE.match(name):
        await _mode(gw).revoke(name, principal.user)
    return Response(status_code=204)


ROUTES: tuple[Route, ...] = (
    route("mcp/{name}/oauth/start", ("GET",), "mcp_oauth_start", start),
    route("mcp/{name}/oauth/callback", ("GET",), "mcp_oauth_callback", callback),
    route("mcp/{name}/oauth", ("DELETE",), "mcp_oauth_forget", forget),
)
