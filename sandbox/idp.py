"""A development identity provider on a real loopback socket: signing keys, a JWKS, discovery, tokens.

Tests and the local sandbox use it instead of mocked crypto (go-oidc's `oidctest` idea): tokens are
signed by PyJWT, an implementation independent of the gateway's verifier, and the gateway fetches the
keys over HTTP exactly as it would from Okta or Entra. `fault` makes the JWKS endpoint misbehave the
ways real providers do. It also signs in browsers with the authorization code flow and PKCE (S256):
`/authorize` approves at once the user named by `login_as` (no login page), only for a client and
redirect URI registered with `register_client`, and `/token` redeems each code once, for the same
client, redirect URI and verifier. Development tooling only: never deployed, never imported by the
gateway.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import functools
import hashlib
import json
import os
import secrets
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import jwt
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

# kind -> (alg, generator)
KINDS: dict[str, tuple[str, Any]] = {
    "RS256": ("RS256", lambda: rsa.generate_private_key(65537, 2048)),
    "RS256-3072": ("RS256", lambda: rsa.generate_private_key(65537, 3072)),
    "RS384": ("RS384", lambda: rsa.generate_private_key(65537, 2048)),
    "RS512": ("RS512", lambda: rsa.generate_private_key(65537, 2048)),
    "PS256": ("PS256", lambda: rsa.generate_private_key(65537, 2048)),
    "PS384": ("PS384", lambda: rsa.generate_private_key(65537, 2048)),
    "PS512": ("PS512", lambda: rsa.generate_private_key(65537, 2048)),
    "ES256": ("ES256", lambda: ec.generate_private_key(ec.SECP256R1())),
    "ES384": ("ES384", lambda: ec.generate_private_key(ec.SECP384R1())),
    "ES512": ("ES512", lambda: ec.generate_private_key(ec.SECP521R1())),
    "EdDSA": ("EdDSA", lambda: ed25519.Ed25519PrivateKey.generate()),
}
FAULTS = (None, "down", "html", "empty", "huge", "trickle", "redirect", "garbage-keys")
HUGE_BYTES = 50 * 1024 * 1024
GATEWAY_AUDIENCE = "api://ai-gateway"     # the sandbox gateway's audience: access tokens are for it
CODE_SECONDS = 60


@dataclass(frozen=True)
class Grant:
    """What a code stands for until it is redeemed."""
    sub: str
    claims: dict[str, Any]
    client_id: str
    redirect_uri: str
    challenge: str
    scope: str
    expires_at: float


@dataclass(frozen=True)
class DevKey:
    kid: str
    alg: str
    private_key: PrivateKeyTypes
    jwk: dict[str, Any]        # the public JWK as published


def public_jwk(private_key: PrivateKeyTypes, alg: str, kid: str | None = None) -> dict[str, Any]:
    """The public JWK of a key with `alg` and `use: sig`; kid defaults to the RFC 7638 thumbprint."""
    public = private_key.public_key()  # type: ignore[union-attr]
    if isinstance(public, rsa.RSAPublicKey):
        jwk = RSAAlgorithm.to_jwk(public, as_dict=True)
        members = ("e", "kty", "n")
    elif isinstance(public, ec.EllipticCurvePublicKey):
        jwk = ECAlgorithm.to_jwk(public, as_dict=True)
        members = ("crv", "kty", "x", "y")
    else:
        jwk = OKPAlgorithm.to_jwk(public, as_dict=True)
        members = ("crv", "kty", "x")
    canonical = json.dumps({m: jwk[m] for m in members}, sort_keys=True, separators=(",", ":"))
    thumb = base64.urlsafe_b64encode(hashlib.sha256(canonical.encode()).digest()).rstrip(b"=").decode()
    return {**{m: jwk[m] for m in members}, "kid": kid or thumb, "alg": alg, "use": "sig"}


def _garbage_jwks() -> list[dict[str, Any]]:
    """Keys no verifier should use: symmetric, too short, off its curve, for encryption, private."""
    weak = public_jwk(rsa.generate_private_key(65537, 1024), "RS256", "weak-rsa-1024")
    enc = {**public_jwk(ec.generate_private_key(ec.SECP256R1()), "ES256", "enc-key"), "use": "enc"}
    enc.pop("alg")
    good = public_jwk(ec.generate_private_key(ec.SECP256R1()), "ES256", "off-curve")
    y = base64.urlsafe_b64decode(good["y"] + "==")
    off = {**good, "y": base64.urlsafe_b64encode(bytes([y[0] ^ 1]) + y[1:]).rstrip(b"=").decode()}
    private = rsa.generate_private_key(65537, 2048)
    leaked = {**public_jwk(private, "RS256", "leaked-private"),
              "d": base64.urlsafe_b64encode(b"\x01" * 256).rstrip(b"=").decode()}
    return [{"kty": "oct", "kid": "hmac", "k": "c2VjcmV0", "alg": "HS256"}, weak, enc, off, leaked]


@functools.lru_cache(maxsize=8)
def _load_pem(pem: bytes) -> PrivateKeyTypes:
    """Loading validates an RSA key, which is slow; a process reloads the same file many times in tests."""
    return serialization.load_pem_private_key(pem, password=None)


class DevIdentityProvider:
    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, key_file: Path | None = None) -> None:
        self.host = host
        self.port = port
        self.key_file = key_file
        self.keys: dict[str, DevKey] = {}
        self.extra_jwks: list[dict[str, Any]] = []   # published verbatim after the real keys
        self.fault: str | None = None
        self.fetch_count = 0          # JWKS GETs served (/keys), faults included
        self.discovery_count = 0      # discovery documents served
        self.redirect_target_hits = 0  # GETs of the redirect target (a client that follows redirects)
        self.discovery_issuer: str | None = None  # override the issuer named by discovery documents
        # sign-in (authorization code + PKCE)
        self.clients: dict[str, set[str]] = {}     # client id -> its registered redirect URIs
        self.login_as: str | None = None           # the user /authorize approves (None: login_required)
        self.login_claims: dict[str, Any] = {}     # their tokens' extra claims
        self.login_error: str | None = None        # /authorize answers this error instead (access_denied)
        self.opaque_access_tokens = False          # issue access tokens that are not JWTs (as for Graph)
        self.codes: dict[str, Grant] = {}
        self.token_outcomes: list[str] = []        # each /token request's outcome: never a code or token
        self.issued: list[str] = []                # every code and token handed out, for tests that look
                                                   # for them where they must not be
        self.default_kid = self._add(self._default_key(), "RS256", None)
        self._runner: web.AppRunner | None = None
        self._streams: set[asyncio.Task[Any]] = set()

    # -- keys -------------------------------------------------------------------------------------

    def _default_key(self) -> PrivateKeyTypes:
        if self.key_file is not None and self.key_file.exists():
            if self.key_file.stat().st_mode & 0o077:
                self.key_file.chmod(0o600)      # a private key: its owner's alone
            loaded = _load_pem(self.key_file.read_bytes())
            if not isinstance(loaded, rsa.RSAPrivateKey):
                raise ValueError(f"{self.key_file} does not hold an RSA private key")
            return loaded
        key = rsa.generate_private_key(65537, 2048)
        if self.key_file is not None:
            pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
            self.key_file.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as out:
                out.write(pem)
        return key

    def _add(self, private_key: PrivateKeyTypes, alg: str, kid: str | None) -> str:
        jwk = public_jwk(private_key, alg, kid)
        self.keys[jwk["kid"]] = DevKey(kid=jwk["kid"], alg=alg, private_key=private_key, jwk=jwk)
        return str(jwk["kid"])

    def add_key(self, kind: str = "RS256", kid: str | None = None) -> str:
        """Generate and publish a signing key of this kind (see KINDS); returns its kid."""
        if kind not in KINDS:
            raise ValueError(f"unknown key kind {kind!r}; one of {', '.join(KINDS)}")
        alg, generate = KINDS[kind]
        return self._add(generate(), alg, kid)

    def add_private_key(self, private_key: PrivateKeyTypes, alg: str, kid: str | None = None) -> str:
        """Publish an existing key (tests share one key between providers this way)."""
        return self._add(private_key, alg, kid)

    def remove_key(self, kid: str) -> None:
        del self.keys[kid]

    def key(self, kid: str | None = None) -> DevKey:
        chosen = kid or self.default_kid
        if chosen not in self.keys:
            raise KeyError(f"no signing key {chosen!r} (removed?); keys: {', '.join(self.keys)}")
        return self.keys[chosen]

    def jwks(self) -> dict[str, Any]:
        return {"keys": [k.jwk for k in self.keys.values()] + list(self.extra_jwks)}

    # -- tokens -----------------------------------------------------------------------------------

    def mint(self, sub: str | None = "dev-user", *, claims: dict[str, Any] | None = None,
             kid: str | None = None, expires_in: int = 3600, audience: str | list[str] | None = None,
             issuer: str | None = None, headers: dict[str, Any] | None = None) -> str:
        key = self.key(kid)
        now = int(time.time())
        payload: dict[str, Any] = {"iss": issuer or self.issuer, "iat": now, "exp": now + expires_in,
                                   "jti": uuid.uuid4().hex}
        if sub is not None:
            payload["sub"] = sub
        if audience is not None:
            payload["aud"] = audience
        payload.update(claims or {})
        return jwt.encode(payload, key.private_key, algorithm=key.alg,  # type: ignore[arg-type]
                          headers={"kid": key.kid, **(headers or {})})

    # -- sign-in ---------------------------------------------------------------------------------

    def register_client(self, client_id: str, redirect_uri: str) -> None:
        """A public client (no secret) and one of its redirect URIs."""
        self.clients.setdefault(client_id, set()).add(redirect_uri)

    async def _authorize(self, request: web.Request) -> web.Response:
        q = request.query
        client_id, redirect_uri = q.get("client_id", ""), q.get("redirect_uri", "")
        if redirect_uri not in self.clients.get(client_id, set()):
            return web.Response(status=400, text="unknown client or unregistered redirect URI")
        state = {"state": q["state"]} if "state" in q else {}

        def back(**params: str) -> web.Response:
            raise web.HTTPFound(f"{redirect_uri}?{urlencode({**params, **state})}")

        if q.get("response_type") != "code":
            return back(error="unsupported_response_type")
        if q.get("code_challenge_method") != "S256" or not q.get("code_challenge"):
            return back(error="invalid_request", error_description="PKCE with S256 is required")
        if self.login_error or self.login_as is None:
            return back(error=self.login_error or "login_required",
                        error_description="The resource owner or authorization server denied the request.")
        code = secrets.token_urlsafe(32)
        self.codes[code] = Grant(self.login_as, dict(self.login_claims), client_id, redirect_uri,
                                 q["code_challenge"], q.get("scope", ""), time.time() + CODE_SECONDS)
        self.issued.append(code)
        return back(code=code)

    def _redeem(self, form: Any) -> dict[str, Any] | str:
        """The token answer for a valid redemption, or the error code."""
        if form.get("grant_type") != "authorization_code":
            return "unsupported_grant_type"
        if form.get("client_id") not in self.clients:
            return "invalid_client"
        grant = self.codes.pop(form.get("code", ""), None)     # a code is used once, even in a failure
        verifier = form.get("code_verifier", "")
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        if grant is None or grant.expires_at < time.time() or grant.client_id != form.get("client_id") \
                or grant.redirect_uri != form.get("redirect_uri") or grant.challenge != challenge:
            return "invalid_grant"
        access = secrets.token_urlsafe(32) if self.opaque_access_tokens else \
            self.mint(grant.sub, claims=grant.claims, audience=GATEWAY_AUDIENCE)
        answer = {"access_token": access, "token_type": "Bearer", "expires_in": 3600, "scope": grant.scope,
                  "id_token": self.mint(grant.sub, claims=grant.claims, audience=grant.client_id),
                  "refresh_token": secrets.token_urlsafe(32)}
        self.issued.extend([answer["access_token"], answer["id_token"], answer["refresh_token"]])
        return answer

    async def _token(self, request: web.Request) -> web.Response:
        answer = self._redeem(await request.post())
        self.token_outcomes.append(answer if isinstance(answer, str) else "issued")
        if isinstance(answer, str):
            return web.json_response({"error": answer, "error_description": "<b>refused</b> the code " +
                                      "(a description the gateway must not repeat)"},
                                     status=401 if answer == "invalid_client" else 400)
        return web.json_response(answer, headers={"Cache-Control": "no-store"})

    # -- the server -------------------------------------------------------------------------------

    @property
    def issuer(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def jwks_uri(self) -> str:
        return self.issuer + "/keys"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/keys", self._keys)
        app.router.add_get("/keys-moved", self._moved)
        app.router.add_get("/.well-known/openid-configuration", self._discovery)
        app.router.add_get("/authorize", self._authorize)
        app.router.add_post("/token", self._token)
        app.router.add_get("/{prefix:.+}/.well-known/openid-configuration", self._discovery)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        self.port = int(self._runner.addresses[0][1])

    async def stop(self) -> None:
        for task in list(self._streams):
            task.cancel()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _keys(self, request: web.Request) -> web.StreamResponse:
        self.fetch_count += 1
        fault = self.fault
        if fault == "down":
            return web.Response(status=503, text="Service Unavailable")
        if fault == "html":
            return web.Response(text="<html><body>Sign in</body></html>", content_type="text/html")
        if fault == "empty":
            return web.json_response({"keys": []})
        if fault == "garbage-keys":
            return web.json_response({"keys": _garbage_jwks()})
        if fault == "redirect":
            raise web.HTTPFound(self.issuer + "/keys-moved")
        if fault == "huge":
            return await self._stream(request, self._huge)
        if fault == "trickle":
            return await self._stream(request, self._trickle)
        return web.json_response(self.jwks())

    async def _moved(self, request: web.Request) -> web.Response:
        self.redirect_target_hits += 1
        return web.json_response(self.jwks())

    async def _discovery(self, request: web.Request) -> web.Response:
        self.discovery_count += 1
        prefix = request.match_info.get("prefix")
        issuer = self.discovery_issuer or (self.issuer + (f"/{prefix}" if prefix else ""))
        return web.json_response({
            "issuer": issuer, "jwks_uri": self.jwks_uri,
            "authorization_endpoint": self.issuer + "/authorize", "token_endpoint": self.issuer + "/token",
            "response_types_supported": ["code"], "grant_types_supported": ["authorization_code"],
            "code_challenge_methods_supported": ["S256"],
            "id_token_signing_alg_values_supported": sorted({k.alg for k in self.keys.values()})})

    async def _stream(self, request: web.Request, body: Any) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        task = asyncio.current_task()
        if task is not None:
            self._streams.add(task)
        try:
            await body(response)
        except (ConnectionError, RuntimeError, asyncio.CancelledError):
            pass  # the client gave up, as it should
        finally:
            if task is not None:
                self._streams.discard(task)
        return response

    @staticmethod
    async def _huge(response: web.StreamResponse) -> None:
        await response.write(b'{"keys": [')
        chunk = b" " * 65536
        for _ in range(HUGE_BYTES // len(chunk)):
            await response.write(chunk)
        await response.write(b"]}")

    @staticmethod
    async def _trickle(response: web.StreamResponse) -> None:
        for byte in b'{"keys": []}' + b" " * 240:
            await response.write(bytes([byte]))
            await asyncio.sleep(0.5)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m sandbox.idp")
    parser.add_argument("--port", type=int, default=7081)
    parser.add_argument("--key-file", type=Path, default=None)
    args = parser.parse_args()

    async def run() -> None:
        idp = DevIdentityProvider(port=args.port, key_file=args.key_file)
        await idp.start()
        print(f"issuer {idp.issuer}\njwks   {idp.jwks_uri}\ntoken  {idp.mint(audience='api://ai-gateway')}",
              flush=True)
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.Event().wait()
        await idp.stop()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run())


if __name__ == "__main__":
    main()
