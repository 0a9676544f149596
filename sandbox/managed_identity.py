"""An App Service / Azure Functions managed-identity endpoint on loopback, backed by the fake Entra.

azure-identity finds it through IDENTITY_ENDPOINT and IDENTITY_HEADER (what App Service sets), asks
`GET {IDENTITY_ENDPOINT}?api-version=2019-08-01&resource=...&client_id=...` with the header
`X-IDENTITY-HEADER`, and gets `{access_token, expires_on, resource, token_type, client_id}`. For the
resource api://AzureADTokenExchange the token is the identity's client assertion (issuer: the fake
Entra's tenant v2 issuer, subject: the identity's principal id); for other resources it is an access
token the emulator accepts. Only identities attached with `attach` are served, like a real app's
user-assigned identities. Plain http, as in App Service. Development tooling only.
"""

from __future__ import annotations

import secrets
import time
import uuid
from typing import Any

from aiohttp import web

from .entra import EXCHANGE_AUDIENCE, FakeEntra, Identity


class ManagedIdentityEndpoint:
    def __init__(self, entra: FakeEntra, *, host: str = "127.0.0.1", port: int = 0,
                 exchange_lifetime: int = 86400) -> None:
        self.entra = entra
        self.host, self.port = host, port
        self.header = secrets.token_hex(16)
        self.exchange_lifetime = exchange_lifetime
        self.attached: dict[str, Identity] = {}
        self.system: Identity | None = None
        self.outage: int | None = None
        self.requests: list[dict[str, Any]] = []
        self._runner: web.AppRunner | None = None

    def attach(self, identity: Identity, *, system: bool = False) -> None:
        if system:
            self.system = identity
        else:
            self.attached[identity.client_id] = identity

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/msi/token"

    @property
    def env(self) -> dict[str, str]:
        """What App Service puts in the environment, for azure-identity to find this endpoint."""
        return {"IDENTITY_ENDPOINT": self.url, "IDENTITY_HEADER": self.header}

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/msi/token", self._token)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.port).start()
        self.port = int(self._runner.addresses[0][1])

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _token(self, request: web.Request) -> web.Response:
        q = request.query
        client_id = q.get("client_id")
        resource = q.get("resource", "")
        self.requests.append({"client_id": client_id, "resource": resource})
        if self.outage is not None:
            return _failure(self.outage, "The service is unavailable.")
        if request.headers.get("X-IDENTITY-HEADER") != self.header:
            return _failure(401, "The request is missing or has an invalid X-IDENTITY-HEADER.")
        if q.get("api-version") != "2019-08-01" or not resource:
            return _failure(400, "The api-version and resource parameters are required.")
        identity = self.attached.get(client_id) if client_id else self.system
        if identity is None:
            return _failure(400, "Unable to load the proper Managed Identity.")
        if resource == EXCHANGE_AUDIENCE:
            lifetime = self.exchange_lifetime
            token = self.entra.exchange_token(identity, lifetime)
        elif resource in self.entra.resources:
            token, lifetime = self.entra.access_token(identity.tenant_id, resource, appid=identity.client_id,
                                                      oid=identity.principal_id)
        else:
            return _failure(400, f"AADSTS500011: The resource principal named {resource} was not found.")
        return web.json_response({"access_token": token, "expires_on": str(int(time.time()) + lifetime),
                                  "resource": resource, "token_type": "Bearer",
                                  "client_id": identity.client_id})


def _failure(status: int, message: str) -> web.Response:
    return web.json_response({"statusCode": status, "message": message, "correlationId": str(uuid.uuid4())},
                             status=status)
