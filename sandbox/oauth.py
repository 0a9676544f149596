"""A fake OAuth authorization server and an MCP server protected by it, on loopback, for the per-user
OAuth tests.

`FakeAuthorizationServer` publishes RFC 8414 metadata, auto-approves at `/authorize` the user named by
`login_hint` (the browser step, without a login page), checks the client, redirect URI, resource and
PKCE (S256) when the code is redeemed, and issues opaque access tokens of `access_lifetime` seconds and
rotating refresh tokens. `ProtectedMcpServer` is the official MCP SDK's server behind a bearer check
against those tokens: it publishes RFC 9728 metadata naming the authorization server, answers 401 with
`resource_metadata` without a valid token, and its `whoami` tool answers per user. Both record what
they were sent (never a secret's value). Development tooling only: never deployed, never imported by
the gateway; the MCP SDK is imported only when the MCP server starts.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import secrets
import socket
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from aiohttp import web


@dataclass
class Grant:
    user: str
    client_id: str
    redirect_uri: str
    challenge: str
    resource: str
    expires_at: float


class FakeAuthorizationServer:
    def __init__(self, *, client_id: str = "gateway-client", client_secret: str | None = None,
                 access_lifetime: float = 3600, host: str = "127.0.0.1") -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self.access_lifetime = access_lifetime
        self.host = host
        self.port = 0
        self.codes: dict[str, Grant] = {}
        self.access: dict[str, tuple[str, float]] = {}       # token -> (user, expires at)
        self.refresh: dict[str, tuple[str, str]] = {}        # token -> (user, resource)
        self.requests: list[dict[str, Any]] = []             # grant, outcome: never a code or token
        self.issued: list[str] = []                          # every code and token handed out (for tests
        self._resource_of: dict[str, str] = {}               # that look for them where they must not be)
        self._runner: web.AppRunner | None = None

    @property
    def issuer(self) -> str:
        return f"http://{self.host}:{self.port}"

    def user_of(self, token: str, resource: str) -> str | None:
        """The user an unexpired access token was issued to, for `resource`."""
        found = self.access.get(token)
        if found is None or found[1] <= time.time():
            return None
        return found[0] if self._resource_of.get(token) == resource else None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/.well-known/oauth-authorization-server", self._metadata)
        app.router.add_get("/authorize", self._authorize)
        app.router.add_post("/token", self._token)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, 0).start()
        self.port = int(self._runner.addresses[0][1])

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _metadata(self, request: web.Request) -> web.Response:
        return web.json_response({
            "issuer": self.issuer, "authorization_endpoint": f"{self.issuer}/authorize",
            "token_endpoint": f"{self.issuer}/token", "response_types_supported": ["code"],
            "grant_types_supported": ["authorization_code", "refresh_token"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "none"]})

    async def _authorize(self, request: web.Request) -> web.Response:
        q = request.query
        if q.get("client_id") != self.client_id or q.get("response_type") != "code" or \
                q.get("code_challenge_method") != "S256" or not q.get("code_challenge"):
            return web.json_response({"error": "invalid_request"}, status=400)
        code = "code-" + secrets.token_urlsafe(24)
        self.issued.append(code)
        self.codes[code] = Grant(user=q.get("login_hint", "tester"), client_id=q["client_id"],
                                 redirect_uri=q.get("redirect_uri", ""), challenge=q["code_challenge"],
                                 resource=q.get("resource", ""), expires_at=time.time() + 60)
        location = q.get("redirect_uri", "") + "?" + urlencode({"code": code, "state": q.get("state", "")})
        raise web.HTTPFound(location)

    def _client_ok(self, request: web.Request, form: dict[str, str]) -> bool:
        if self.client_secret is None:
            return form.get("client_id") == self.client_id
        header = request.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            return False
        user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        return user == self.client_id and password == self.client_secret

    async def _token(self, request: web.Request) -> web.Response:
        form = {k: str(v) for k, v in (await request.post()).items()}
        record: dict[str, Any] = {"grant_type": form.get("grant_type"), "resource": form.get("resource")}
        self.requests.append(record)
        if not self._client_ok(request, form):
            record["outcome"] = "invalid_client"
            return web.json_response({"error": "invalid_client"}, status=401)
        if form.get("grant_type") == "authorization_code":
            user = self._redeem(form)
        elif form.get("grant_type") == "refresh_token":
            user = self._rotate(form)
        else:
            user = None
        if user is None:
            record["outcome"] = "invalid_grant"
            return web.json_response({"error": "invalid_grant"}, status=400)
        record["outcome"] = "issued"
        record["user"] = user
        return web.json_response(self._issue(user, form.get("resource", "")))

    def _redeem(self, form: dict[str, str]) -> str | None:
        grant = self.codes.pop(form.get("code", ""), None)    # single use
        verifier = form.get("code_verifier", "")
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        if grant is None or grant.expires_at <= time.time() or grant.challenge != challenge or \
                grant.redirect_uri != form.get("redirect_uri") or grant.resource != form.get("resource"):
            return None
        return grant.user

    def _rotate(self, form: dict[str, str]) -> str | None:
        found = self.refresh.pop(form.get("refresh_token", ""), None)
        if found is None or found[1] != form.get("resource"):
            return None
        return found[0]

    def _issue(self, user: str, resource: str) -> dict[str, Any]:
        access, refresh = "at-" + secrets.token_urlsafe(24), "rt-" + secrets.token_urlsafe(24)
        self.access[access] = (user, time.time() + self.access_lifetime)
        self._resource_of[access] = resource
        self.refresh[refresh] = (user, resource)
        self.issued += [access, refresh]
        return {"access_token": access, "token_type": "Bearer", "expires_in": self.access_lifetime,
                "refresh_token": refresh}


class ProtectedMcpServer:
    """The official SDK's MCP server at `/mcp`, answering only to the authorization server's tokens."""

    def __init__(self, authorization: FakeAuthorizationServer, host: str = "127.0.0.1") -> None:
        self.authorization = authorization
        self.host = host
        self.port = 0
        self.seen: list[str] = []        # every Authorization header it was sent
        self._server: Any = None
        self._task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/mcp"

    @property
    def metadata_url(self) -> str:
        return f"http://{self.host}:{self.port}/.well-known/oauth-protected-resource/mcp"

    def _app(self) -> Any:
        from mcp.server.mcpserver import Context, MCPServer
        from starlette.responses import JSONResponse

        mcp = MCPServer("protected")

        def whoami(ctx):  # type: ignore[no-untyped-def]
            """Who the bearer token was issued to."""
            token = (ctx.headers or {}).get("authorization", "").removeprefix("Bearer ")
            return f"hello {self.authorization.user_of(token, self.url)}"

        whoami.__annotations__ = {"ctx": Context, "return": str}   # real classes: the SDK reads them
        mcp.tool()(whoami)

        inner = mcp.streamable_http_app(stateless_http=True, json_response=True)

        async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
            if scope["type"] != "http":
                return await inner(scope, receive, send)
            if scope["path"] == "/.well-known/oauth-protected-resource/mcp":
                body = {"resource": self.url, "authorization_servers": [self.authorization.issuer],
                        "bearer_methods_supported": ["header"]}
                return await JSONResponse(body)(scope, receive, send)
            headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
            header = headers.get("authorization", "")
            self.seen.append(header)
            if self.authorization.user_of(header.removeprefix("Bearer "), self.url) is None:
                challenge = f'Bearer resource_metadata="{self.metadata_url}"'
                return await JSONResponse({"error": "invalid_token"}, status_code=401,
                                          headers={"WWW-Authenticate": challenge})(scope, receive, send)
            return await inner(scope, receive, send)

        return app

    async def start(self) -> None:
        import uvicorn

        sock = socket.socket()
        sock.bind((self.host, 0))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(self._app(), log_level="warning", access_log=False, lifespan="on")
        self._server = uvicorn.Server(config)
        self._task = asyncio.get_running_loop().create_task(self._server.serve(sockets=[sock]))
        while not self._server.started:  # noqa: ASYNC110  (uvicorn sets a flag, not an event)
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            await self._task
            self._server = self._task = None
