"""A Microsoft Entra ID stand-in on a real loopback HTTPS socket, for the upstream-credential tests.

It speaks the protocol azure-identity and MSAL speak: OpenID configuration and instance discovery,
JWKS, and `POST /{tenant}/oauth2/v2.0/token` with the client-credentials grant (client secret, a
certificate's client assertion, or a federated client assertion). A federated assertion is checked the
way a federated identity credential checks it: the issuer's keys are fetched from the issuer's own
OpenID configuration (the fake Kubernetes issuer, a token-file signer, or this Entra for managed
identities), then issuer, subject and audience must match one of the app's federated credentials.
Refusals are Entra's real error JSON (error, error_description "AADSTS...: ...", error_codes,
trace_id, correlation_id). Access tokens are RS256 JWTs for the requested resource that
`bearer_check` verifies, so the emulator accepts only tokens issued here for the right scope.
Development tooling only: never deployed, never imported by the gateway.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import ssl
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
from aiohttp import ClientSession, ClientTimeout, TCPConnector, web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

EXCHANGE_AUDIENCE = "api://AzureADTokenExchange"
JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
DEFAULT_RESOURCES = ("https://cognitiveservices.azure.com", "https://ai.azure.com", EXCHANGE_AUDIENCE)


class Signer:
    """An RSA key that signs JWTs and publishes itself as a JWKS."""

    def __init__(self, kid: str | None = None, key: rsa.RSAPrivateKey | None = None) -> None:
        self.key = key or rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.kid = kid or uuid.uuid4().hex[:16]

    def sign(self, claims: dict[str, Any], headers: dict[str, Any] | None = None) -> str:
        return jwt.encode(claims, self.key, algorithm="RS256", headers={"kid": self.kid, **(headers or {})})

    def jwk(self) -> dict[str, Any]:
        doc = jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key(), as_dict=True)
        return {**doc, "kid": self.kid, "use": "sig", "alg": "RS256"}

    def jwks(self) -> dict[str, Any]:
        return {"keys": [self.jwk()]}


def make_certificate(common_name: str = "gateway-test") -> tuple[bytes, x509.Certificate]:
    """A self-signed certificate and its key as one PEM (what CertificateCredential reads)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.now(UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + timedelta(days=2)).sign(key, hashes.SHA256()))
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()) + cert.public_bytes(serialization.Encoding.PEM)
    return pem, cert


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def thumbprint_s256(cert: x509.Certificate) -> str:
    return _b64(hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).digest())


@dataclass(frozen=True)
class FederatedCredential:
    issuer: str
    subject: str
    audiences: tuple[str, ...] = (EXCHANGE_AUDIENCE,)


@dataclass
class App:
    client_id: str
    object_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    secrets: dict[str, bool] = field(default_factory=dict)      # value -> expired
    certificates: list[x509.Certificate] = field(default_factory=list)
    federated: list[FederatedCredential] = field(default_factory=list)


@dataclass
class Identity:
    """A user-assigned managed identity: its client id, and the principal id a federated credential
    names as subject."""

    tenant_id: str
    client_id: str
    principal_id: str = field(default_factory=lambda: str(uuid.uuid4()))


class _Refusal(Exception):
    def __init__(self, status: int, error: str, code: int, text: str) -> None:
        super().__init__(text)
        self.status, self.error, self.code, self.text = status, error, code, text


class FakeEntra:
    def __init__(self, *, ssl_context: ssl.SSLContext, client_ssl: ssl.SSLContext | None = None,
                 host: str = "127.0.0.1", port: int = 0, token_lifetime: int = 3600,
                 resources: Iterable[str] = DEFAULT_RESOURCES, combined_fic_errors: bool = False,
                 signer: Signer | None = None) -> None:
        self.host, self.port = host, port
        self._ssl = ssl_context
        self._client_ssl = client_ssl      # to fetch other issuers' keys (trusts the test CA)
        self.token_lifetime = token_lifetime
        self.resources = set(resources)
        self.combined_fic_errors = combined_fic_errors   # answer AADSTS70021 instead of 700211/2/3
        self.signer = signer or Signer()
        self.tenants: dict[str, dict[str, App]] = {}
        self.identities: dict[str, Identity] = {}
        self.outage: int | None = None     # answer every token request with this HTTP status
        self.delay = 0.0                   # seconds each token request takes
        self.requests: list[dict[str, Any]] = []   # grant, client_id, scope, outcome: never a secret
        self.issued = 0
        self._keys: dict[str, dict[str, Any]] = {}
        self._runner: web.AppRunner | None = None
        self._session: ClientSession | None = None

    # --- directory -------------------------------------------------------------------------------

    def add_tenant(self, tenant_id: str) -> None:
        self.tenants.setdefault(tenant_id, {})

    def add_app(self, tenant_id: str, client_id: str, *, secrets: Iterable[str] = (),
                expired_secrets: Iterable[str] = (), certificates: Iterable[x509.Certificate] = (),
                federated: Iterable[FederatedCredential] = ()) -> App:
        self.add_tenant(tenant_id)
        app = App(client_id=client_id, secrets={**dict.fromkeys(secrets, False),
                                                 **dict.fromkeys(expired_secrets, True)},
                  certificates=list(certificates), federated=list(federated))
        self.tenants[tenant_id][client_id] = app
        return app

    def add_identity(self, tenant_id: str, client_id: str) -> Identity:
        self.add_tenant(tenant_id)
        identity = Identity(tenant_id=tenant_id, client_id=client_id)
        self.identities[client_id] = identity
        return identity

    def issuer(self, tenant_id: str) -> str:
        """The v2 issuer of this tenant: what a managed identity's exchange token carries as iss."""
        return f"{self.url}/{tenant_id}/v2.0"

    @property
    def url(self) -> str:
        return f"https://{self.host}:{self.port}"

    # --- tokens -----------------------------------------------------------------------------------

    def access_token(self, tenant_id: str, resource: str, *, appid: str, oid: str,
                     lifetime: int | None = None) -> tuple[str, int]:
        lifetime = self.token_lifetime if lifetime is None else lifetime
        now = int(time.time())
        claims = {"aud": resource, "iss": f"https://sts.windows.net/{tenant_id}/", "iat": now, "nbf": now,
                  "exp": now + lifetime, "appid": appid, "oid": oid, "sub": oid, "tid": tenant_id,
                  "idtyp": "app", "ver": "1.0", "uti": uuid.uuid4().hex}
        self.issued += 1
        return self.signer.sign(claims), lifetime

    def exchange_token(self, identity: Identity, lifetime: int = 86400) -> str:
        """A managed identity's token for api://AzureADTokenExchange (its client assertion)."""
        now = int(time.time())
        return self.signer.sign({"aud": EXCHANGE_AUDIENCE, "iss": self.issuer(identity.tenant_id),
                                 "sub": identity.principal_id, "oid": identity.principal_id,
                                 "azp": identity.client_id, "tid": identity.tenant_id, "iat": now,
                                 "nbf": now, "exp": now + lifetime, "ver": "2.0"})

    def verify(self, token: str, audience: str) -> bool:
        """True when `token` is an unexpired access token issued here for `audience`."""
        try:
            claims = jwt.decode(token, self.signer.key.public_key(), algorithms=["RS256"], audience=audience)
        except jwt.PyJWTError:
            return False
        return str(claims.get("iss", "")).startswith("https://sts.windows.net/")

    def bearer_check(self, scope: str = "https://cognitiveservices.azure.com/.default"
                     ) -> Callable[[str], bool]:
        audience = scope.removesuffix("/.default")
        return lambda token: self.verify(token, audience)

    # --- server -----------------------------------------------------------------------------------

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/{tenant}/v2.0/.well-known/openid-configuration", self._openid_configuration)
        app.router.add_get("/{tenant}/discovery/v2.0/keys", self._keys_document)
        app.router.add_get("/common/discovery/instance", self._instance_discovery)
        app.router.add_get("/{tenant}/discovery/instance", self._instance_discovery)
        app.router.add_post("/{tenant}/oauth2/v2.0/token", self._token)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, ssl_context=self._ssl)
        await site.start()
        self.port = int(self._runner.addresses[0][1])

    async def stop(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _openid_configuration(self, request: web.Request) -> web.Response:
        tenant = request.match_info["tenant"]
        if tenant not in self.tenants and tenant not in ("common", "organizations"):
            return self._error_response(_Refusal(400, "invalid_tenant", 90002, self._tenant_text(tenant)))
        base = f"{self.url}/{tenant}"
        return web.json_response({
            "issuer": self.issuer(tenant), "token_endpoint": f"{base}/oauth2/v2.0/token",
            "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
            "jwks_uri": f"{base}/discovery/v2.0/keys", "response_types_supported": ["code", "id_token"],
            "subject_types_supported": ["pairwise"], "id_token_signing_alg_values_supported": ["RS256"],
            "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt"],
            "tenant_region_scope": "WW", "cloud_instance_name": self.host})

    async def _keys_document(self, request: web.Request) -> web.Response:
        return web.json_response(self.signer.jwks())

    async def _instance_discovery(self, request: web.Request) -> web.Response:
        return web.json_response({
            "tenant_discovery_endpoint": f"{self.url}/{{tenant}}/v2.0/.well-known/openid-configuration",
            "api-version": "1.1",
            "metadata": [{"preferred_network": f"{self.host}:{self.port}",
                          "preferred_cache": f"{self.host}:{self.port}",
                          "aliases": [f"{self.host}:{self.port}"]}]})

    async def _token(self, request: web.Request) -> web.Response:
        tenant = request.match_info["tenant"]
        form = await request.post()
        record: dict[str, Any] = {"tenant": tenant, "client_id": form.get("client_id"),
                                  "scope": form.get("scope"), "grant_type": form.get("grant_type"),
                                  "kind": ("secret" if "client_secret" in form else
                                           "assertion" if "client_assertion" in form else "none")}
        self.requests.append(record)
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.outage is not None:
            record["outcome"] = self.outage
            return web.json_response({"error": "temporarily_unavailable",
                                      "error_description": "AADSTS90033: A transient error has occurred. "
                                      "Please try again.", "error_codes": [90033]}, status=self.outage)
        try:
            body = await self._grant(tenant, {k: str(v) for k, v in form.items()}, str(request.url))
        except _Refusal as refusal:
            record["outcome"] = refusal.code
            return self._error_response(refusal)
        record["outcome"] = "issued"
        return web.json_response(body)

    async def _grant(self, tenant: str, form: dict[str, str], url: str) -> dict[str, Any]:
        if tenant not in self.tenants:
            raise _Refusal(400, "invalid_request", 90002, self._tenant_text(tenant))
        if form.get("grant_type") != "client_credentials":
            raise _Refusal(400, "unsupported_grant_type", 70003,
                           "The app requested an unsupported grant type.")
        client_id = form.get("client_id", "")
        app = self.tenants[tenant].get(client_id)
        if app is None:
            raise _Refusal(400, "unauthorized_client", 700016,
                           f"Application with identifier '{client_id}' was not found in the directory "
                           f"'{tenant}'. This can happen if the application has not been installed by the "
                           "administrator of the tenant or consented to by any user in the tenant. You may "
                           "have sent your authentication request to the wrong tenant.")
        resource = self._resource(form.get("scope", ""), tenant)
        if "client_secret" in form:
            self._check_secret(app, form["client_secret"])
        elif form.get("client_assertion_type") == JWT_BEARER and form.get("client_assertion"):
            await self._check_assertion(app, form["client_assertion"], url.split("?")[0])
        else:
            raise _Refusal(401, "invalid_client", 7000218,
                           "The request body must contain the following parameter: 'client_assertion' or "
                           "'client_secret'.")
        token, lifetime = self.access_token(tenant, resource, appid=app.client_id, oid=app.object_id)
        return {"token_type": "Bearer", "expires_in": lifetime, "ext_expires_in": lifetime,
                "access_token": token}

    def _resource(self, scope: str, tenant: str) -> str:
        scopes = scope.split()
        if len(scopes) != 1 or not scopes[0].endswith("/.default"):
            raise _Refusal(400, "invalid_scope", 1002012,
                           f"The provided value for scope {scope} is not valid. Client credential flows "
                           "must have a scope value with /.default suffixed to the resource identifier "
                           "(application ID URI).")
        resource = scopes[0].removesuffix("/.default")
        if resource not in self.resources:
            raise _Refusal(400, "invalid_resource", 500011,
                           f"The resource principal named {resource} was not found in the tenant named "
                           f"{tenant}. This can happen if the application has not been installed by the "
                           "administrator of the tenant or consented to by any user in the tenant.")
        return resource

    def _check_secret(self, app: App, value: str) -> None:
        expired = app.secrets.get(value)
        if expired is None:
            raise _Refusal(401, "invalid_client", 7000215,
                           "Invalid client secret provided. Ensure the secret being sent in the request is "
                           f"the client secret value, not the client secret ID, for a secret added to app "
                           f"'{app.client_id}'.")
        if expired:
            raise _Refusal(401, "invalid_client", 7000222,
                           f"The provided client secret keys for app '{app.client_id}' are expired. Visit "
                           "the Azure portal to create new keys for your app.")

    async def _check_assertion(self, app: App, assertion: str, token_url: str) -> None:
        try:
            header = jwt.get_unverified_header(assertion)
            claims = jwt.decode(assertion, options={"verify_signature": False})
        except jwt.PyJWTError:
            raise _Refusal(400, "invalid_request", 50027,
                           "JWT token is invalid or malformed.") from None
        if claims.get("iss") == app.client_id and claims.get("sub") == app.client_id:
            self._check_certificate_assertion(app, assertion, header, token_url)
        else:
            await self._check_federated_assertion(app, assertion, header, claims)

    def _check_certificate_assertion(self, app: App, assertion: str, header: dict[str, Any],
                                     token_url: str) -> None:
        thumb = str(header.get("x5t#S256") or header.get("x5t") or "")
        cert = next((c for c in app.certificates if thumbprint_s256(c) == thumb.rstrip("=")), None)
        if cert is None:
            raise _Refusal(401, "invalid_client", 700027,
                           "Client assertion failed signature validation. [Reason - The key was not found., "
                           f"Thumbprint of key used by client: '{thumb}', Please visit the Azure Portal, "
                           "Graph Explorer or directly use MS Graph to see configured keys for app Id "
                           f"'{app.client_id}'.]")
        try:
            jwt.decode(assertion, cert.public_key(), algorithms=["PS256", "RS256"], audience=token_url,
                       leeway=300)
        except (jwt.ExpiredSignatureError, jwt.ImmatureSignatureError):
            raise self._time_refusal(assertion) from None
        except jwt.PyJWTError as exc:
            raise _Refusal(401, "invalid_client", 700027,
                           f"Client assertion failed signature validation. [Reason - {exc}]") from None

    async def _check_federated_assertion(self, app: App, assertion: str, header: dict[str, Any],
                                         claims: dict[str, Any]) -> None:
        iss, sub = claims.get("iss"), claims.get("sub")
        auds = claims.get("aud")
        auds = [auds] if isinstance(auds, str) else list(auds or [])
        if not app.federated:
            raise _Refusal(400, "invalid_client", 70025,
                           f"The client '{app.client_id}'(app) has no configured federated identity "
                           "credentials.")
        combined = _Refusal(400, "invalid_request", 70021,
                            "No matching federated identity record found for presented assertion. "
                            f"Assertion Issuer: '{iss}'. Assertion Subject: '{sub}'. Assertion Audience: "
                            f"'{','.join(auds)}'. https://learn.microsoft.com/entra/workload-id/"
                            "workload-identity-federation")
        by_issuer = [f for f in app.federated if f.issuer == iss]
        if not by_issuer:
            raise combined if self.combined_fic_errors else _Refusal(
                400, "invalid_request", 700211,
                f"No matching federated identity record found for presented assertion issuer '{iss}'. "
                "Please check your federated identity credential Subject, Audience and Issuer against the "
                "presented assertion. https://learn.microsoft.com/entra/workload-id/"
                "workload-identity-federation")
        by_subject = [f for f in by_issuer if f.subject == sub]
        if not by_subject:
            raise combined if self.combined_fic_errors else _Refusal(
                400, "invalid_request", 700213,
                f"No matching federated identity record found for presented assertion subject '{sub}'. "
                "Please note that the matching is done using a case-sensitive comparison. Check your "
                "federated identity credential Subject, Audience and Issuer against the presented "
                "assertion. https://learn.microsoft.com/entra/workload-id/workload-identity-federation")
        matched = [f for f in by_subject if any(a in f.audiences for a in auds)]
        if not matched:
            raise combined if self.combined_fic_errors else _Refusal(
                400, "invalid_request", 700212,
                f"No matching federated identity record found for presented assertion audience "
                f"'{','.join(auds)}'. Please check your federated identity credential Subject, Audience "
                "and Issuer against the presented assertion. https://learn.microsoft.com/entra/"
                "workload-id/workload-identity-federation")
        keys = await self._issuer_keys(str(iss), str(header.get("kid", "")))
        key = next((k for k in keys.get("keys", []) if k.get("kid") == header.get("kid")), None)
        if key is None:
            raise _Refusal(401, "invalid_client", 50013,
                           "Assertion failed signature validation. [Reason - The key was not found., "
                           f"Thumbprint of key used by client: '{header.get('kid')}']")
        try:
            jwt.decode(assertion, jwt.PyJWK(key).key, algorithms=["RS256", "ES256"],
                       audience=matched[0].audiences, leeway=60)
        except (jwt.ExpiredSignatureError, jwt.ImmatureSignatureError):
            raise self._time_refusal(assertion) from None
        except jwt.PyJWTError as exc:
            raise _Refusal(401, "invalid_client", 50013,
                           f"Assertion failed signature validation. [Reason - {exc}]") from None

    async def _issuer_keys(self, issuer: str, kid: str) -> dict[str, Any]:
        cached = self._keys.get(issuer)
        if cached is not None and any(k.get("kid") == kid for k in cached.get("keys", [])):
            return cached
        if self._session is None:
            self._session = ClientSession(connector=TCPConnector(ssl=self._client_ssl or True),
                                          timeout=ClientTimeout(total=10))
        try:
            async with self._session.get(f"{issuer.rstrip('/')}/.well-known/openid-configuration") as resp:
                resp.raise_for_status()
                jwks_uri = (await resp.json(content_type=None))["jwks_uri"]
            async with self._session.get(jwks_uri) as resp:
                resp.raise_for_status()
                keys = await resp.json(content_type=None)
        except Exception:
            raise _Refusal(401, "invalid_client", 50166,
                           f"Request to External OIDC endpoint failed. Issuer: '{issuer}'.") from None
        self._keys[issuer] = keys
        return keys

    def _time_refusal(self, assertion: str) -> _Refusal:
        claims = jwt.decode(assertion, options={"verify_signature": False})

        def when(value: Any) -> str:
            return (datetime.fromtimestamp(value, UTC).strftime("%m/%d/%Y %H:%M:%S")
                    if isinstance(value, int | float) else "(none)")

        return _Refusal(401, "invalid_client", 700024,
                        f"Client assertion is not within its valid time range. Current time: "
                        f"{when(time.time())}, assertion valid from {when(claims.get('nbf'))}, expiry time "
                        f"of assertion {when(claims.get('exp'))}. Review the documentation at "
                        "https://learn.microsoft.com/entra/identity-platform/certificate-credentials .")

    @staticmethod
    def _tenant_text(tenant: str) -> str:
        return (f"Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are "
                "signing into the correct cloud. Check with your subscription administrator, this may "
                "happen if there are no active subscriptions for the tenant.")

    @staticmethod
    def _error_response(refusal: _Refusal) -> web.Response:
        trace, correlation = str(uuid.uuid4()), str(uuid.uuid4())
        stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
        return web.json_response({
            "error": refusal.error,
            "error_description": f"AADSTS{refusal.code}: {refusal.text} Trace ID: {trace} Correlation ID: "
                                 f"{correlation} Timestamp: {stamp}",
            "error_codes": [refusal.code], "timestamp": stamp, "trace_id": trace,
            "correlation_id": correlation,
            "error_uri": f"https://login.microsoftonline.com/error?code={refusal.code}"},
            status=refusal.status)
