"""The MCP plane's handlers: an MCP server behind the gateway's identities, roles and tool filters.

`POST /mcp/{name}` checks, in order: a well-formed name, the Origin, the caller's token, viewer on
`mcp-server:N` (else the same 404 as for no such server), one strict JSON-RPC message, headers that
match it (stateless era), the caller's own session, the tool filter; then forwards the body unchanged
to the server's configured URL with allowlisted headers and the gateway's own authentication, and
relays the answer (see relay.py). `DELETE /mcp/{name}` ends the caller's session at the server.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from starlette.responses import Response

from .. import runtime
from ..callers import authenticate
from ..config.schema import NAME_RE
from ..errors import (
    GatewayError,
    InvalidRequest,
    InvalidToken,
    JsonRpcError,
    MissingToken,
    PermissionDenied,
    UpstreamError,
)
from ..remote.audit import RemoteCall, args_hash
from ..remote.auth import RemoteAuthProblem
from ..remote.client import RemoteFailure, RemoteReply, RemoteRequest
from . import codes, elicitation, headers, relay, wire

if TYPE_CHECKING:
    from ..auth.identities import Principal
    from ..config.model import McpServer
    from ..config.snapshot import View
    from ..http import Call
    from ..runtime import Gateway

DELETE_ANSWER_LIMIT = 64 * 1024
_TOOL_NAME = re.compile(r"^[A-Za-z0-9._-]{1,128}$")   # the MCP tool-name shape: safe to log


@dataclass(frozen=True, slots=True)
class Caller:
    """An authenticated caller of one MCP server they may use."""

    gw: Gateway
    view: View
    principal: Principal
    server: McpServer


def metadata_url(public_url: str, name: str) -> str:
    return f"{public_url}/.well-known/oauth-protected-resource/mcp/{name}"


def jsonrpc_route(work: Callable[[Call, str], Awaitable[Response]]) -> Callable[[Call], Awaitable[Response]]:
    """`work(call, name)` with every failure in JSON-RPC's shape, and a token refusal's challenge
    pointing at the server's resource metadata (RFC 9728), as MCP clients expect."""

    async def route(call: Call) -> Response:
        name = call.request.path_params["name"]
        try:
            if not NAME_RE.match(name):
                raise not_found()
            return await work(call, name)
        except JsonRpcError:
            raise
        except (MissingToken, InvalidToken) as exc:
            public_url = (await runtime.gateway()).settings.public_url
            raise codes.as_jsonrpc(_challenge(exc, metadata_url(public_url, name))) from None
        except GatewayError as exc:
            raise codes.as_jsonrpc(exc) from None

    return route


def _challenge(error: GatewayError, resource_metadata: str) -> GatewayError:
    params = error.headers.get("WWW-Authenticate", "Bearer")[len("Bearer"):].strip()
    error.headers["WWW-Authenticate"] = f'Bearer resource_metadata="{resource_metadata}"' + (
        f", {params}" if params else "")
    return error


def not_found() -> JsonRpcError:
    return JsonRpcError("no such MCP server, or you do not have access to it", rpc_code=codes.NOT_FOUND,
                        status=404, code="not_found")


def check_origin(call: Call, public_url: str) -> None:
    """A browser's request from any other origin is refused (DNS rebinding, cross-site requests)."""
    origin = call.request.headers.get("origin")
    if origin is None:
        return
    allowed = urlsplit(public_url)
    if origin.lower() != f"{allowed.scheme}://{allowed.netloc}".lower():
        raise PermissionDenied("the request's Origin is not the gateway's own (GATEWAY_PUBLIC_URL)")


async def admit(call: Call, name: str) -> Caller:
    """The caller, when they hold viewer on the server; the same 404 for no role and no server."""
    gw = await runtime.gateway()
    check_origin(call, gw.settings.public_url)
    gw, view, principal = await authenticate(call)
    server = view.mcp_servers.get(name)
    if server is None or not view.policy.allows(principal.principals, f"mcp-server:{name}", "viewer"):
        raise not_found()
    return Caller(gw, view, principal, server)


def raw_headers(call: Call) -> list[tuple[str, str]]:
    return [(k.decode("latin-1"), v.decode("latin-1")) for k, v in call.request.headers.raw]


def upstream_session(call: Call, caller: Caller, rpc_id: Any = None) -> str | None:
    """The server's session id inside the caller's sealed one; 404 (start a new session) for one not
    sealed for this caller and server, which is never forwarded."""
    given = [v for k, v in raw_headers(call) if k == "mcp-session-id"]
    if not given:
        return None
    opened = caller.gw.remote.sealer.open_session(caller.server.name, caller.principal.user, given[0])
    if len(given) > 1 or opened is None:
        raise JsonRpcError("session not found: start a new session", rpc_code=codes.NOT_FOUND, status=404,
                           code="not_found", rpc_id=rpc_id)
    return opened


async def gateway_auth(caller: Caller, rpc_id: Any = None) -> dict[str, str]:
    """The headers the gateway authenticates itself with to this server, for this caller."""
    try:
        return await caller.gw.remote.auth.headers(caller.server, caller.principal, caller.view)
    except RemoteAuthProblem as problem:
        if problem.kind == "authorization_required":
            raise await elicitation.authorization_required(caller.gw.remote.oauth, caller.server,
                                                           caller.principal, problem, rpc_id) from None
        raise JsonRpcError(problem.message, rpc_code=codes.SERVER_ERROR, status=503, code="unavailable",
                           rpc_id=rpc_id) from None


def outgoing(caller: Caller, method: str, sent: dict[str, str], body: bytes | None,
             deadline: float | None = None) -> RemoteRequest:
    """A request to the server's configured URL (never one built from caller text), given what is left
    of the call's time."""
    server = caller.server
    timeout = server.timeout_s
    if deadline is not None:
        timeout = max(0.001, deadline - asyncio.get_running_loop().time())
    return RemoteRequest(method, server.url, sent, body, timeout, server.allow_private_network)


async def exchange(caller: Caller, request: RemoteRequest, rpc_id: Any = None) -> RemoteReply:
    """One exchange with the server; its refusal of the gateway's credentials is the gateway's 502."""
    try:
        reply = await caller.gw.remote.client.open(request)
    except RemoteFailure as failure:
        raise codes.failed(failure, rpc_id) from None
    if reply.status in (401, 403):
        reply.release()
        raise codes.as_jsonrpc(UpstreamError(f"the MCP server refused the gateway's credentials (HTTP "
                                             f"{reply.status}): its operator must fix the server's auth"),
                               rpc_id)
    return reply


def seal_for(caller: Caller) -> Callable[[str], str]:
    sealer, server, user = caller.gw.remote.sealer, caller.server.name, caller.principal.user
    return lambda upstream_id: sealer.seal_session(server, user, upstream_id)


async def mcp(call: Call, name: str) -> Response:
    return await (delete(call, name) if call.request.method == "DELETE" else post(call, name))


async def post(call: Call, name: str) -> Response:
    caller = await admit(call, name)
    raw = await call.body(caller.gw.settings.max_body_bytes)
    message = wire.parse(raw, call.request.headers.get("mcp-protocol-version"))
    audit = Audit(call, caller, message) if message.method == "tools/call" else None
    try:
        return await forward(call, caller, message, audit)
    except GatewayError as exc:
        if audit is not None:
            audit.finish("timeout" if exc.status == 504 else "refused" if exc.status < 500 else "failed",
                         exc.status)
        raise


async def forward(call: Call, caller: Caller, message: wire.Message, audit: Audit | None) -> Response:
    wire.check_headers(message, raw_headers(call))
    session = upstream_session(call, caller, message.echo_id)
    if message.method == "tools/call" and not (message.tool and caller.server.tools.allows(message.tool)):
        # Never the caller's tool name in the answer: it may be anything they typed.
        raise JsonRpcError("Unknown tool", rpc_code=codes.INVALID_PARAMS, code="invalid_request",
                           status=400 if message.modern else 200, rpc_id=message.echo_id)
    deadline = asyncio.get_running_loop().time() + caller.server.timeout_s
    sent = headers.outbound(raw_headers(call), message, session=session, request_id=call.request_id,
                            auth=await gateway_auth(caller, message.echo_id))
    reply = await exchange(caller, outgoing(caller, "POST", sent, message.raw, deadline), message.echo_id)
    return await answer(caller, message, reply, deadline, audit)


async def answer(caller: Caller, message: wire.Message, reply: RemoteReply, deadline: float,
                 audit: Audit | None) -> Response:
    try:
        relayed = headers.relayed(reply.headers, seal_for(caller))
    except GatewayError:
        reply.release()
        raise
    if message.method == "tools/list" and 200 <= reply.status < 300:
        try:
            return await relay.filtered(reply, relayed, deadline, caller.server.tools.allows)
        except RemoteFailure as failure:
            raise codes.failed(failure, message.echo_id) from None
    watch = relay.Outcome(message.rpc_id, reply.content_type == "text/event-stream") if audit else None
    status = reply.status

    def finished(outcome: str) -> None:
        if audit is not None:
            audit.finish(outcome, status)

    return relay.streamed(reply, relayed, deadline, rpc_id=message.echo_id, watch=watch, finished=finished)


async def delete(call: Call, name: str) -> Response:
    """Ends the caller's session at the server; the server's status (and allowlisted headers) relayed."""
    caller = await admit(call, name)
    session = upstream_session(call, caller)
    if session is None:
        raise InvalidRequest("DELETE ends a session: send its Mcp-Session-Id")
    sent = headers.outbound(raw_headers(call), None, session=session, request_id=call.request_id,
                            auth=await gateway_auth(caller))
    reply = await exchange(caller, outgoing(caller, "DELETE", sent, None))
    try:
        relayed = headers.relayed(reply.headers, seal_for(caller))
        body = await reply.read(DELETE_ANSWER_LIMIT)
    except RemoteFailure as failure:
        raise codes.failed(failure) from None
    finally:
        reply.release()
    return Response(body, status_code=reply.status, headers=relayed)


class Audit:
    """The one audit record of a tools/call, written when its outcome is known."""

    def __init__(self, call: Call, caller: Caller, message: wire.Message) -> None:
        self._call, self._caller, self._message = call, caller, message
        self._started = time.perf_counter()
        self._done = False

    def finish(self, outcome: str, status: int) -> None:
        if self._done:
            return
        self._done = True
        tool = self._message.tool
        principal = self._caller.principal
        self._caller.gw.remote.audit.record(RemoteCall(
            kind="mcp", target=self._caller.server.name, principal=principal.user, method="tools/call",
            outcome=outcome, status=status, latency_ms=(time.perf_counter() - self._started) * 1000,
            request_id=self._call.request_id,
            tool=tool if tool is not None and _TOOL_NAME.match(tool) else "(not a tool name)",
            args_hash=args_hash(self._message.params.get("arguments")), email=principal.email,
            identities=tuple(sorted(principal.identities))))
