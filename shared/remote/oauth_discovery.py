"""Finds the OAuth authorization server of an MCP server with auth type oauth, and its endpoints.

`auth.authorization_server` pins it when set; otherwise the server's RFC 9728 protected-resource
metadata names it (`/.well-known/oauth-protected-resource` with the URL's path appended, then without).
The authorization server's RFC 8414 metadata (else its OpenID configuration) must name itself as the
issuer it was fetched for, support PKCE with S256, and put its endpoints at URLs the remote-URL rule
admits (https; plain http only to loopback in development): the browser is sent to one, and the
authorization code and client secret to the other. Results are kept for an hour per server.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from ..config.allowlist import NotAllowed
from ..errors import UpstreamError
from .client import RemoteFailure, RemoteRequest

if TYPE_CHECKING:
    from ..config.allowlist import Allowlist
    from ..config.model import McpServer
    from .client import RemoteClient

KEEP_S = 3600.0
METADATA_LIMIT = 256 * 1024
TIMEOUT_S = 10.0


@dataclass(frozen=True, slots=True)
class AuthServer:
    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    client_secret_post: bool        # the server takes the secret in the form rather than Basic auth


def _well_known(url: str, name: str) -> list[str]:
    """RFC 8615 locations for `url`: the path appended after the well-known name, then the root."""
    parts = urlsplit(url)
    path = parts.path.rstrip("/")
    found = [urlunsplit((parts.scheme, parts.netloc, f"/.well-known/{name}{path}", "", ""))]
    if path:
        found.append(urlunsplit((parts.scheme, parts.netloc, f"/.well-known/{name}", "", "")))
    return found


class Discovery:
    def __init__(self, client: RemoteClient, allowlist: Allowlist,
                 clock: Callable[[], float] = time.time) -> None:
        self._client = client
        self._allowlist = allowlist
        self._clock = clock
        self._kept: dict[tuple[str, str, str], tuple[float, AuthServer]] = {}

    async def find(self, server: McpServer) -> AuthServer:
        pinned = str(server.auth.options.get("authorization_server") or "")
        key = (server.name, server.url, pinned)
        kept = self._kept.get(key)
        if kept is not None and self._clock() - kept[0] < KEEP_S:
            return kept[1]
        issuer = pinned or await self._from_resource(server)
        found = await self._authorization_server(server, issuer)
        self._kept[key] = (self._clock(), found)
        return found

    async def _from_resource(self, server: McpServer) -> str:
        for url in _well_known(server.url, "oauth-protected-resource"):
            doc = await self._document(server, url)
            servers = doc.get("authorization_servers") if doc else None
            if isinstance(servers, list) and servers and isinstance(servers[0], str):
                return servers[0]
        raise UpstreamError(f"MCP server {server.name} publishes no OAuth protected-resource metadata "
                            "naming an authorization server: set auth.authorization_server")

    async def _authorization_server(self, server: McpServer, issuer: str) -> AuthServer:
        self._check(server, issuer, "its authorization server")
        urls = [*_well_known(issuer, "oauth-authorization-server")[:1],
                issuer.rstrip("/") + "/.well-known/openid-configuration"]
        for url in urls:
            doc = await self._document(server, url)
            if doc is not None:
                return self._parse(server, issuer, doc)
        raise UpstreamError(f"the authorization server of MCP server {server.name} publishes no metadata")

    def _parse(self, server: McpServer, issuer: str, doc: dict[str, Any]) -> AuthServer:
        if doc.get("issuer") != issuer:
            raise UpstreamError(f"the authorization server of MCP server {server.name} names another issuer "
                                "in its metadata")
        methods = doc.get("code_challenge_methods_supported")
        if not isinstance(methods, list) or "S256" not in methods:
            raise UpstreamError(f"the authorization server of MCP server {server.name} does not support "
                                "PKCE with S256")
        endpoints = [doc.get("authorization_endpoint"), doc.get("token_endpoint")]
        if not all(isinstance(e, str) and e for e in endpoints):
            raise UpstreamError(f"the authorization server of MCP server {server.name} names no "
                                "authorization or token endpoint")
        for endpoint in endpoints:
            self._check(server, str(endpoint), "an endpoint of its authorization server")
        auth_methods = doc.get("token_endpoint_auth_methods_supported")
        post_only = isinstance(auth_methods, list) and "client_secret_post" in auth_methods and \
            "client_secret_basic" not in auth_methods
        return AuthServer(issuer, str(endpoints[0]), str(endpoints[1]), post_only)

    def _check(self, server: McpServer, url: str, what: str) -> None:
        try:
            self._allowlist.check_remote_url(url)
        except NotAllowed as exc:
            raise UpstreamError(f"MCP server {server.name}: the URL of {what} {exc.problem}") from None

    async def _document(self, server: McpServer, url: str) -> dict[str, Any] | None:
        """The JSON object at `url`, or None when there is none (any status but 200)."""
        request = RemoteRequest("GET", url, {"Accept": "application/json"}, None, TIMEOUT_S,
                                server.allow_private_network)
        try:
            reply = await self._client.open(request)
            body = await reply.read(METADATA_LIMIT)
        except RemoteFailure as exc:
            raise UpstreamError(f"OAuth metadata of MCP server {server.name}: {exc.message}") from None
        if reply.status != 200:
            return None
        try:
            doc = json.loads(body)
        except ValueError:
            return None
        return doc if isinstance(doc, dict) else None
