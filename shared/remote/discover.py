"""Lists an MCP server's tools, for the operator's `python -m shared mcp tools NAME`.

It speaks MCP itself over the remote-call client (shared/remote/client.py: the address policy, no
redirects, the server's timeout), so the SDK stays a test dependency. First the stateless 2026-07-28
revision: `server/discover`, then `tools/list`, each POST carrying `MCP-Protocol-Version` and
`Mcp-Method`. A server that does not answer discover with that version is asked the session way of
the 2025 revisions: `initialize`, `notifications/initialized`, `tools/list` with the `Mcp-Session-Id`
it gave, and a DELETE that ends the session. A network failure or a refused credential is reported,
never retried in the other revision. Answers may be JSON or an SSE stream; both are read up to
MAX_BODY bytes. What the server says (tool names, descriptions) is its text, not ours: the caller
escapes it before printing.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .client import RemoteClient, RemoteFailure, RemoteReply, RemoteRequest

if TYPE_CHECKING:
    from ..config.model import McpServer

MODERN = "2026-07-28"
LEGACY = "2025-11-25"
LEGACY_VERSIONS = ("2025-03-26", "2025-06-18", "2025-11-25")
MAX_BODY = 4 * 1024 * 1024
MAX_PAGES = 50
CLIENT_INFO = {"name": "ai-gateway-cli", "version": "1"}
META = {"io.modelcontextprotocol/protocolVersion": MODERN, "io.modelcontextprotocol/clientInfo": CLIENT_INFO,
        "io.modelcontextprotocol/clientCapabilities": {}}
SESSION_ID_RE = re.compile(r"^[\x21-\x7e]{1,256}$")
"""A session id we send back must be visible ASCII (the server's text goes into our header)."""


@dataclass(frozen=True, slots=True)
class Tool:
    name: str
    description: str


@dataclass(frozen=True, slots=True)
class Discovered:
    protocol: str                 # the revision the server answered in
    tools: tuple[Tool, ...]


class DiscoveryFailed(Exception):
    """The tools could not be listed; `message` says why in the operator's terms."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class _RpcError(Exception):
    """The server answered with a JSON-RPC error, or an HTTP error without one."""


class Discoverer:
    """One server, one credential (`headers`: what RemoteAuthenticator gave for it)."""

    def __init__(self, client: RemoteClient, server: McpServer, headers: Mapping[str, str]) -> None:
        self._client = client
        self._server = server
        self._auth = dict(headers)
        self._ids = iter(range(1, 10_000))

    async def tools(self) -> Discovered:
        try:
            return await self._modern()
        except _RpcError:
            pass
        try:
            return await self._legacy()
        except _RpcError as exc:
            raise DiscoveryFailed(f"the server answered neither the 2026-07-28 nor the session revision "
                                  f"of MCP ({exc})") from None

    async def _modern(self) -> Discovered:
        found = await self._call("server/discover", {"_meta": META}, self._modern_headers("server/discover"))
        versions = found.get("supportedVersions")
        if not isinstance(versions, list) or MODERN not in versions:
            raise _RpcError("the server does not offer the stateless revision")
        tools = await self._list(lambda: self._modern_headers("tools/list"), {"_meta": META})
        return Discovered(MODERN, tools)

    def _modern_headers(self, method: str) -> dict[str, str]:
        return {"MCP-Protocol-Version": MODERN, "Mcp-Method": method}

    async def _legacy(self) -> Discovered:
        init = {"protocolVersion": LEGACY, "capabilities": {}, "clientInfo": CLIENT_INFO}
        reply_headers: dict[str, str] = {}
        answer = await self._call("initialize", init, {}, reply_headers)
        version = answer.get("protocolVersion")
        version = version if version in LEGACY_VERSIONS else LEGACY
        session = reply_headers.get("mcp-session-id")
        if session is not None and not SESSION_ID_RE.match(session):
            raise DiscoveryFailed("the server gave a session id that is not a plain token")
        headers = {"MCP-Protocol-Version": version, **({"Mcp-Session-Id": session} if session else {})}
        try:
            await self._notify("notifications/initialized", headers)
            tools = await self._list(lambda: headers, {})
        finally:
            if session:
                await self._end(headers)
        return Discovered(version, tools)

    async def _list(self, headers: Callable[[], Mapping[str, str]],
                    params: dict[str, Any]) -> tuple[Tool, ...]:
        """Every page of tools/list."""
        out: list[Tool] = []
        cursor: str | None = None
        for _ in range(MAX_PAGES):
            page = await self._call("tools/list", {**params, **({"cursor": cursor} if cursor else {})},
                                    headers())
            out += [_tool(t) for t in page.get("tools") or [] if isinstance(t, dict)]
            cursor = page.get("nextCursor")
            if not isinstance(cursor, str) or not cursor:
                return tuple(out)
        raise DiscoveryFailed(f"the server's tool list goes on past {MAX_PAGES} pages")

    async def _call(self, method: str, params: dict[str, Any], headers: Mapping[str, str],
                    reply_headers: dict[str, str] | None = None) -> dict[str, Any]:
        """One JSON-RPC request; its result, or _RpcError."""
        ident = next(self._ids)
        body = json.dumps({"jsonrpc": "2.0", "id": ident, "method": method, "params": params}).encode()
        reply = await self._open("POST", body, headers)
        if reply_headers is not None:
            reply_headers.update({k.lower(): v for k, v in reply.headers.items()})
        message = _answer(await self._read(reply), reply.content_type, ident)
        if reply.status >= 400 or message is None or "error" in message:
            raise _RpcError(f"{method}: HTTP {reply.status}")
        result = message.get("result")
        if not isinstance(result, dict):
            raise DiscoveryFailed(f"the server's answer to {method} holds no result")
        return result

    async def _notify(self, method: str, headers: Mapping[str, str]) -> None:
        body = json.dumps({"jsonrpc": "2.0", "method": method}).encode()
        reply = await self._open("POST", body, headers)
        await self._read(reply)
        if reply.status >= 400:
            raise DiscoveryFailed(f"the server refused {method} (HTTP {reply.status})")

    async def _end(self, headers: Mapping[str, str]) -> None:
        """End the session; a server that keeps sessions to itself may refuse (405): that is fine."""
        try:
            reply = await self._open("DELETE", None, headers)
            reply.release()
        except (RemoteFailure, DiscoveryFailed):
            pass

    async def _open(self, method: str, body: bytes | None, headers: Mapping[str, str]) -> RemoteReply:
        sent = {**self._auth, **headers, "Accept": "application/json, text/event-stream"}
        if body is not None:
            sent["Content-Type"] = "application/json"
        try:
            reply = await self._client.open(RemoteRequest(
                method, self._server.url, sent, body, self._server.timeout_s,
                self._server.allow_private_network))
        except RemoteFailure as exc:
            raise DiscoveryFailed(exc.message) from None
        if reply.status in (401, 403):
            reply.release()
            raise DiscoveryFailed(f"the server refused the gateway's credentials (HTTP {reply.status})")
        return reply

    async def _read(self, reply: RemoteReply) -> bytes:
        try:
            return await reply.read(MAX_BODY)
        except RemoteFailure as exc:
            raise DiscoveryFailed(exc.message) from None


def _tool(raw: dict[str, Any]) -> Tool:
    name, description = raw.get("name"), raw.get("description")
    return Tool(name if isinstance(name, str) else "", description if isinstance(description, str) else "")


def _answer(body: bytes, content_type: str, ident: int) -> dict[str, Any] | None:
    """The JSON-RPC response to request `ident`, from a JSON body or an SSE stream; None if absent."""
    if content_type == "text/event-stream":
        candidates = [_json(data) for data in _sse_data(body)]
    else:
        candidates = [_json(body)]
    for message in candidates:
        if isinstance(message, dict) and message.get("id") == ident and \
                ("result" in message or "error" in message):
            return message
    return None


def _sse_data(body: bytes) -> list[bytes]:
    """The data of each event of an SSE stream (multi-line data joined with newlines)."""
    events: list[bytes] = []
    lines: list[bytes] = []
    for line in body.replace(b"\r\n", b"\n").split(b"\n"):
        if not line:
            if lines:
                events.append(b"\n".join(lines))
            lines = []
        elif line.startswith(b"data:"):
            lines.append(line[5:].removeprefix(b" "))
    if lines:
        events.append(b"\n".join(lines))
    return events


def _json(data: bytes) -> Any:
    try:
        return json.loads(data)
    except ValueError:
        return None
