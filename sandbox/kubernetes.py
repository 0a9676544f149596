"""A Kubernetes API server stand-in over loopback HTTPS: the TokenRequest API and the cluster's OIDC issuer.

`POST /api/v1/namespaces/{ns}/serviceaccounts/{sa}/token` checks the caller's bearer token (a pod's
own service-account token minted here), that the caller may create tokens for that service account
(RBAC, `allow`), and the TokenRequest body; it answers `status.token` (a JWT with
sub `system:serviceaccount:<ns>:<sa>` and the requested audiences) and `status.expirationTimestamp`.
Refusals are Kubernetes `Status` objects. The server is also the cluster's OIDC issuer
(`/.well-known/openid-configuration`, `/openid/v1/jwks`), so the fake Entra verifies its tokens the way
Entra verifies an AKS or EKS cluster's. `projected_token` mints what the kubelet would write to a
token file. A gateway reaches it only once its https origin (`url`) is listed in
GATEWAY_KUBERNETES_API_SERVERS, and the token and CA files its tests write only once their directory is
listed in GATEWAY_CREDENTIAL_FILE_DIRS, as for any API server other than the in-cluster one.
Development tooling only.
"""

from __future__ import annotations

import json
import ssl
import time
from datetime import UTC, datetime
from typing import Any

import jwt
from aiohttp import web

from .entra import Signer

API_AUDIENCE = "https://kubernetes.default.svc.cluster.local"
MIN_EXPIRATION_SECONDS = 600


def subject(namespace: str, service_account: str) -> str:
    return f"system:serviceaccount:{namespace}:{service_account}"


class FakeKubernetes:
    def __init__(self, *, ssl_context: ssl.SSLContext, host: str = "127.0.0.1", port: int = 0,
                 signer: Signer | None = None) -> None:
        self.host, self.port = host, port
        self._ssl = ssl_context
        self.signer = signer or Signer()
        self.service_accounts: set[tuple[str, str]] = set()
        self.grants: set[tuple[str, str, str]] = set()    # (caller subject, namespace, service account)
        self.requests: list[dict[str, Any]] = []
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"https://{self.host}:{self.port}"

    @property
    def issuer(self) -> str:
        return self.url

    def add_service_account(self, namespace: str, name: str) -> None:
        self.service_accounts.add((namespace, name))

    def allow(self, caller: tuple[str, str], target: tuple[str, str]) -> None:
        """RBAC: `caller` may create tokens for `target` (a Role on serviceaccounts/token)."""
        self.grants.add((subject(*caller), *target))

    def _mint(self, namespace: str, name: str, audiences: list[str], lifetime: int) -> tuple[str, int]:
        now = int(time.time())
        claims = {"iss": self.issuer, "sub": subject(namespace, name), "aud": audiences, "iat": now,
                  "nbf": now, "exp": now + lifetime,
                  "kubernetes.io": {"namespace": namespace, "serviceaccount": {"name": name}}}
        return self.signer.sign(claims), now + lifetime

    def pod_token(self, namespace: str, name: str, lifetime: int = 3600) -> str:
        """The pod's own service-account token (what /var/run/secrets/.../token holds)."""
        self.add_service_account(namespace, name)
        return self._mint(namespace, name, [API_AUDIENCE], lifetime)[0]

    def projected_token(self, namespace: str, name: str, *, audience: str = "api://AzureADTokenExchange",
                        lifetime: int = 3600, issued_ago: int = 0) -> str:
        """A projected token for Entra, as the AKS workload identity webhook has the kubelet write."""
        now = int(time.time()) - issued_ago
        claims = {"iss": self.issuer, "sub": subject(namespace, name), "aud": [audience], "iat": now,
                  "nbf": now, "exp": now + lifetime}
        return self.signer.sign(claims)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/api/v1/namespaces/{ns}/serviceaccounts/{sa}/token", self._token_request)
        app.router.add_get("/.well-known/openid-configuration", self._openid_configuration)
        app.router.add_get("/openid/v1/jwks", self._jwks)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.port, ssl_context=self._ssl).start()
        self.port = int(self._runner.addresses[0][1])

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _openid_configuration(self, request: web.Request) -> web.Response:
        return web.json_response({"issuer": self.issuer, "jwks_uri": f"{self.url}/openid/v1/jwks",
                                  "response_types_supported": ["id_token"],
                                  "subject_types_supported": ["public"],
                                  "id_token_signing_alg_values_supported": ["RS256"]})

    async def _jwks(self, request: web.Request) -> web.Response:
        return web.json_response(self.signer.jwks())

    def _caller(self, request: web.Request) -> str | None:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            return None
        try:
            claims = jwt.decode(token.strip(), self.signer.key.public_key(), algorithms=["RS256"],
                                audience=API_AUDIENCE, issuer=self.issuer)
        except jwt.PyJWTError:
            return None
        return str(claims["sub"])

    async def _token_request(self, request: web.Request) -> web.Response:
        ns, sa = request.match_info["ns"], request.match_info["sa"]
        caller = self._caller(request)
        self.requests.append({"namespace": ns, "service_account": sa, "caller": caller})
        if caller is None:
            return _status(401, "Unauthorized", "Unauthorized")
        if (caller, ns, sa) not in self.grants and caller != subject(ns, sa):
            return _status(403, "Forbidden", f'serviceaccounts "{sa}" is forbidden: User "{caller}" cannot '
                           f'create resource "serviceaccounts/token" in API group "" in the namespace "{ns}"')
        if (ns, sa) not in self.service_accounts:
            return _status(404, "NotFound", f'serviceaccounts "{sa}" not found')
        try:
            body = json.loads(await request.read())
        except ValueError:
            return _status(400, "BadRequest", "the body is not JSON")
        spec = body.get("spec") if isinstance(body, dict) else None
        if (body.get("kind") != "TokenRequest" or body.get("apiVersion") != "authentication.k8s.io/v1"
                or not isinstance(spec, dict)):
            return _status(400, "BadRequest", "expected an authentication.k8s.io/v1 TokenRequest")
        audiences = spec.get("audiences") or [API_AUDIENCE]
        seconds = int(spec.get("expirationSeconds") or 3600)
        if seconds < MIN_EXPIRATION_SECONDS:
            return _status(422, "Invalid", "spec.expirationSeconds: Invalid value: may not specify a "
                           "duration less than 10 minutes")
        token, expires = self._mint(ns, sa, list(audiences), seconds)
        stamp = datetime.fromtimestamp(expires, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return web.json_response({"kind": "TokenRequest", "apiVersion": "authentication.k8s.io/v1",
                                  "metadata": {"name": sa, "namespace": ns, "creationTimestamp": None},
                                  "spec": {"audiences": audiences, "expirationSeconds": seconds,
                                           "boundObjectRef": None},
                                  "status": {"token": token, "expirationTimestamp": stamp}}, status=201)


def _status(code: int, reason: str, message: str) -> web.Response:
    return web.json_response({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                              "message": message, "reason": reason, "code": code}, status=code)
