"""Outbound auth `oauth`: each user's own token at an MCP server, obtained once through the gateway.

The flow (authorization code with PKCE S256, RFC 8707 `resource` = the server's URL):
`start` answers the authorization server's URL for the caller, carrying a sealed `state`
(oauth_state.py); `finish` (the browser's redirect back) redeems that state once, exchanges the code and
stores the tokens encrypted per server and user (oauth_store.py). `headers` then answers
`Authorization: Bearer <the user's token>` from memory, refreshing it with the refresh token before it
expires, and re-reading storage in the background every `RECHECK_S` (the request in hand never waits on
that read) so a revocation made on another instance takes effect there too. Stored tokens are bound to
the server's name, URL, client id, pinned authorization server and the user: repointing a server (say,
by a hostile editor) makes them unusable rather than sending them to the new URL. Tokens, codes and
secrets are never logged nor put in an error.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

from ..config.model import McpServer
from ..errors import InvalidRequest, Unavailable, UpstreamError
from ..settings import SettingsError, secret
from .auth import RemoteAuthProblem
from .client import RemoteFailure, RemoteRequest
from .oauth_state import States, pkce_pair

if TYPE_CHECKING:
    from ..auth.identities import Principal
    from ..config.model import Agent
    from ..config.snapshot import View
    from .client import RemoteClient
    from .oauth_discovery import AuthServer, Discovery
    from .oauth_store import OAuthTokenStore
    from .seal import Sealer

log = logging.getLogger("gateway.remote.oauth")

PURPOSE = "oauth-token"
RECHECK_S = 30.0            # how stale this instance's copy may be (revocation elsewhere)
AHEAD_S = 60.0              # refresh when less than this (or half the token's life) remains
DEFAULT_LIFETIME_S = 3600   # when the token response has no expires_in
TOKEN_RESPONSE_LIMIT = 64 * 1024
TOKEN_TIMEOUT_S = 15.0
HELD_MAX = 10_000           # (server, user) pairs kept in memory; past it the copies are dropped
NO_KEY = ("per-user OAuth needs GATEWAY_SEALING_KEY (the key that encrypts OAuth state and stored "
          "tokens, the same on every instance): set it")
_ERROR_CODE = re.compile(r"^[a-z_]{1,40}$")
_TOKEN = re.compile(r"^[\x21-\x7e]{1,16384}$")     # what fits in a header: visible ASCII


@dataclass(frozen=True, slots=True)
class Held:
    access: str
    refresh: str | None
    expires_at: float
    obtained_at: float
    etag: str | None = None
    checked_at: float = 0.0

    def __repr__(self) -> str:     # never show a token
        return f"Held(expires_at={self.expires_at})"

    def due(self, now: float) -> bool:
        return self.expires_at - now < min(AHEAD_S, (self.expires_at - self.obtained_at) / 2)


def binding(server: McpServer, principal: str) -> str:
    """What a stored token belongs to (the AEAD context): every value that decides where it goes."""
    o = server.auth.options
    return "\n".join((server.name, server.url, str(o.get("client_id", "")),
                      str(o.get("authorization_server") or ""), principal))


class OAuthMode:
    def __init__(self, *, sealer: Sealer, store: OAuthTokenStore, discovery: Discovery,
                 client: RemoteClient, public_url: str, secret_prefix: str,
                 clock: Callable[[], float] = time.time) -> None:
        self._sealer = sealer
        self._store = store
        self._discovery = discovery
        self._client = client
        self._public_url = public_url
        self._prefix = secret_prefix
        self._clock = clock
        self._states = States(sealer, clock)
        self._held: dict[str, Held] = {}
        self._refreshing: dict[str, asyncio.Task[Held]] = {}
        self._rechecking: dict[str, asyncio.Task[None]] = {}

    # -- the flow -------------------------------------------------------------------------------------

    def redirect_uri(self, server: McpServer) -> str:
        return f"{self._public_url}/mcp/{server.name}/oauth/callback"

    def start_url(self, server: McpServer | Agent) -> str:
        return f"{self._public_url}/mcp/{server.name}/oauth/start"

    def require_key(self) -> None:
        if not self._sealer.persistent:
            raise Unavailable(NO_KEY)

    async def start(self, server: McpServer, principal: Principal) -> str:
        """The URL the user opens to let the gateway act for them at `server`."""
        self.require_key()
        found = await self._discovery.find(server)
        verifier, challenge = pkce_pair()
        params = {"response_type": "code", "client_id": str(server.auth.options["client_id"]),
                  "redirect_uri": self.redirect_uri(server),
                  "state": self._states.seal(server, principal.user, verifier),
                  "code_challenge": challenge, "code_challenge_method": "S256", "resource": server.url}
        scopes = server.auth.options.get("scopes")
        if scopes:
            params["scope"] = " ".join(scopes)
        joiner = "&" if "?" in found.authorization_endpoint else "?"
        return found.authorization_endpoint + joiner + urlencode(params, quote_via=quote)

    async def finish(self, server: McpServer, code: str, state: str, *, expect: str | None = None) -> str:
        """Redeem the authorization response; the user principal it was for. `expect`: the principal
        of a token the callback request carried, which must be the one that started the flow."""
        self.require_key()
        started = self._states.open(server, state)
        if started is not None and expect is not None and started.principal != expect:
            raise InvalidRequest("this authorization was started by another user")
        if started is None or not await self._store.spend_state(started.nonce, started.expires_at):
            raise InvalidRequest("this authorization is not valid (expired, already used, or for another "
                                 "server): start again")
        found = await self._discovery.find(server)
        now = self._clock()
        try:
            answer = await self._token(server, found, {"grant_type": "authorization_code", "code": code,
                                                       "redirect_uri": self.redirect_uri(server),
                                                       "code_verifier": started.verifier})
        except _Refused:
            raise InvalidRequest("the authorization server refused this authorization: start again") from None
        held = _held(answer, None, now)
        await self._save(server, started.principal, held, None)
        log.info("oauth: %s connected MCP server %s", started.principal, server.name)
        return started.principal

    async def revoke(self, server: str, principal: str) -> None:
        await self._store.delete(server, principal)
        for key in [k for k in self._held if k.startswith(server + "\n") and k.endswith("\n" + principal)]:
            del self._held[key]

    async def revoke_all(self, server: str) -> int:
        count = await self._store.delete_all(server)
        for key in [k for k in self._held if k.startswith(server + "\n")]:
            del self._held[key]
        return count

    # -- the hot path ---------------------------------------------------------------------------------

    async def headers(self, target: McpServer | Agent, principal: Principal, view: View) -> dict[str, str]:
        if not isinstance(target, McpServer):
            raise RemoteAuthProblem("unavailable", "per-user OAuth is for MCP servers only")
        if not self._sealer.persistent:
            raise RemoteAuthProblem("unavailable", NO_KEY)
        key = binding(target, principal.user)
        now = self._clock()
        held = self._held.get(key)
        try:
            if held is None:
                held = await self._load(target, principal.user, key, now)
            elif now - held.checked_at >= RECHECK_S:
                self._recheck(target, principal.user, key, now)
            if held.due(now):
                held = await self._refresh_once(target, principal.user, key, held)
        except (Unavailable, UpstreamError) as exc:
            raise RemoteAuthProblem("unavailable", exc.public) from None
        return {"Authorization": f"Bearer {held.access}"}

    def _required(self, target: McpServer) -> RemoteAuthProblem:
        return RemoteAuthProblem("authorization_required", f"MCP server {target.name} needs your "
                                 "authorization first: open the start URL",
                                 authorize_url=self.start_url(target))

    async def _load(self, target: McpServer, principal: str, key: str, now: float) -> Held:
        stored = await self._store.get(target.name, principal)
        raw = self._sealer.decrypt(PURPOSE, stored.sealed, context=key) if stored else None
        if stored is None or raw is None:     # none, or stored for the server as it was before
            self._held.pop(key, None)
            raise self._required(target)
        doc = json.loads(raw)
        held = Held(doc["a"], doc.get("r"), doc["x"], doc["o"], stored.etag, now)
        if len(self._held) >= HELD_MAX:
            self._held.clear()
        self._held[key] = held
        return held

    def _recheck(self, target: McpServer, principal: str, key: str, now: float) -> None:
        """Re-read the stored token in the background, once at a time per user and server: a revocation
        elsewhere drops this copy; a storage failure keeps it (stale but valid beats failing)."""
        if key in self._rechecking:
            return

        async def reread() -> None:
            try:
                await self._load(target, principal, key, now)
            except RemoteAuthProblem:
                pass                        # revoked: _load dropped the copy; the next call is told
            except (Unavailable, UpstreamError) as exc:
                log.warning("re-reading a stored OAuth token of %s failed: %s", target.name, exc.message)

        task = asyncio.get_running_loop().create_task(reread())
        self._rechecking[key] = task
        task.add_done_callback(lambda _: self._rechecking.pop(key, None))

    async def _save(self, server: McpServer, principal: str, held: Held, etag: str | None) -> Held:
        key = binding(server, principal)
        doc = {"a": held.access, "r": held.refresh, "x": held.expires_at, "o": held.obtained_at}
        sealed = self._sealer.encrypt(PURPOSE, json.dumps(doc).encode(), context=key)
        held = replace(held, etag=await self._store.put(server.name, principal, sealed, etag),
                       checked_at=self._clock())
        self._held[key] = held
        return held

    async def _refresh_once(self, target: McpServer, principal: str, key: str, held: Held) -> Held:
        """One refresh per user and server at a time in this process; the others wait for it."""
        task = self._refreshing.get(key)
        if task is None:
            task = asyncio.get_running_loop().create_task(self._refresh(target, principal, key, held))
            self._refreshing[key] = task
            task.add_done_callback(lambda _: self._refreshing.pop(key, None))
        return await asyncio.shield(task)

    async def _refresh(self, target: McpServer, principal: str, key: str, held: Held) -> Held:
        now = self._clock()
        if held.refresh is None:
            if held.expires_at - now > 0:
                return held
            raise self._required(target)
        try:
            answer = await self._token(target, await self._discovery.find(target),
                                       {"grant_type": "refresh_token", "refresh_token": held.refresh})
        except _Refused:
            fresh = await self._load(target, principal, key, now)   # another instance may have rotated it
            if fresh.refresh != held.refresh and not fresh.due(now):
                return fresh
            await self._store.delete(target.name, principal)
            self._held.pop(key, None)
            raise self._required(target) from None
        except (Unavailable, UpstreamError):
            if held.expires_at - now > 0:      # a failed refresh keeps serving a still-valid token
                return held
            raise
        return await self._save(target, principal, _held(answer, held.refresh, now), None)

    # -- the token endpoint ---------------------------------------------------------------------------

    async def _token(self, server: McpServer, found: AuthServer, form: dict[str, str]) -> dict[str, Any]:
        form = {**form, "client_id": str(server.auth.options["client_id"]), "resource": server.url}
        headers = {"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"}
        client_secret = self._client_secret(server)
        if client_secret is not None and found.client_secret_post:
            form["client_secret"] = client_secret
        elif client_secret is not None:
            pair = f"{quote(form['client_id'], safe='')}:{quote(client_secret, safe='')}"
            headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode("ascii")
        request = RemoteRequest("POST", found.token_endpoint, headers, urlencode(form).encode(),
                                TOKEN_TIMEOUT_S, server.allow_private_network)
        try:
            reply = await self._client.open(request)
            body = await reply.read(TOKEN_RESPONSE_LIMIT)
        except RemoteFailure as exc:
            raise UpstreamError(f"the token endpoint of MCP server {server.name}: {exc.message}") from None
        return _answer(server, reply.status, body)

    def _client_secret(self, server: McpServer) -> str | None:
        env = server.auth.options.get("client_secret_env")
        if env is None:
            return None
        try:
            return secret(str(env), purpose=f"the OAuth client secret of MCP server {server.name}",
                          prefix=self._prefix)
        except SettingsError:
            raise Unavailable(f"the OAuth client secret of MCP server {server.name} is not configured (its "
                              "environment variable is unset)") from None


class _Refused(UpstreamError):
    """The authorization server refused the grant (invalid_grant and the like): authorize again."""


def _answer(server: McpServer, status: int, body: bytes) -> dict[str, Any]:
    try:
        doc = json.loads(body)
    except ValueError:
        doc = None
    if not isinstance(doc, dict):
        raise UpstreamError(f"the token endpoint of MCP server {server.name} answered HTTP {status} "
                            "without a JSON object")
    if status == 400 and doc.get("error") in ("invalid_grant", "invalid_request", "unauthorized_client"):
        raise _Refused(f"the authorization server of MCP server {server.name} refused the grant "
                       f"({doc['error']})")
    access = doc.get("access_token")
    if status != 200 or not isinstance(access, str) or not _TOKEN.match(access):
        error = doc.get("error")
        code = f" ({error})" if isinstance(error, str) and _ERROR_CODE.match(error) else ""
        raise UpstreamError(f"the token endpoint of MCP server {server.name} answered HTTP {status} "
                            f"without a token{code}")
    if str(doc.get("token_type", "")).lower() != "bearer":
        raise UpstreamError(f"the token endpoint of MCP server {server.name} issued a token that is not "
                            "a bearer token")
    return doc


def _held(answer: dict[str, Any], old_refresh: str | None, now: float) -> Held:
    lifetime = answer.get("expires_in")
    seconds = float(lifetime) if isinstance(lifetime, int | float) and not isinstance(lifetime, bool) \
        and lifetime > 0 else DEFAULT_LIFETIME_S
    refresh = answer.get("refresh_token")
    return Held(access=answer["access_token"], refresh=refresh if isinstance(refresh, str) and refresh
                else old_refresh, expires_at=now + seconds, obtained_at=now)
