"""One token source per account that gets an Entra token (every auth type but api-key; docs/configuration.md).

A source fetches a NEW token each time it is asked (TokenKeeper decides when) through
azure-identity's async credential for its auth type, built lazily on the first fetch so that a bad
setting (a missing certificate file, an unset secret variable) is reported as a CredentialProblem on
the request path and in `status()`, and is picked up once fixed. For workload identity the assertion
is fetched asynchronously first (azure-identity calls its assertion callable synchronously) and handed
over through a context variable, so the callable never does I/O.
"""

from __future__ import annotations

import contextvars
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ..config.allowlist import Allowlist, NotAllowed
from ..config.model import Account
from ..settings import SettingsError, secret
from . import azure_sdk
from .assertions import AssertionSource, build_assertion_source, managed_identity_problem, peek_claims
from .azure_sdk import DEFAULT_AUTHORITY, AzureHttp
from .entra import Attempt, problem_from_exception
from .problem import CredentialProblem
from .tokens import Token

if TYPE_CHECKING:
    from azure.core.credentials import AccessTokenInfo
    from azure.core.credentials_async import AsyncTokenCredential

AZURE_OPENAI_SCOPE = "https://cognitiveservices.azure.com/.default"
FOUNDRY_PROJECT_SCOPE = "https://ai.azure.com/.default"
# Sovereign clouds have their own Cognitive Services resource URI; the endpoint's host says which.
_CLOUD_SCOPES = ((".azure.us", "https://cognitiveservices.azure.us/.default"),
                 (".azure.cn", "https://cognitiveservices.azure.cn/.default"))


def default_scope(account: Account) -> str:
    """auth.scope when set; else Foundry *project* endpoints (/api/projects/...) need ai.azure.com, and
    every other endpoint (Azure OpenAI, and the Azure OpenAI surface of a Foundry resource) takes the
    Cognitive Services scope of its cloud."""
    configured = account.auth.options.get("scope")
    if configured:
        return str(configured)
    parts = urlsplit(account.endpoint)
    if account.kind == "ai-foundry" and "/api/projects/" in parts.path + "/":
        return FOUNDRY_PROJECT_SCOPE
    host = (parts.hostname or "").lower()
    for suffix, scope in _CLOUD_SCOPES:
        if host.endswith(suffix):
            return scope
    return AZURE_OPENAI_SCOPE


def authority_of(options: Mapping[str, Any], allowlist: Allowlist) -> str:
    raw = str(options.get("authority_host") or DEFAULT_AUTHORITY).strip().rstrip("/")
    if urlsplit(raw).scheme != "https":
        raise CredentialProblem(f"auth.authority_host {raw!r} must be an https URL (Entra is only spoken to "
                                "over TLS)", field="authority_host")
    try:
        allowlist.check_authority(raw)
    except NotAllowed as exc:
        raise CredentialProblem(f"auth.authority_host {exc.problem}", field="authority_host") from None
    return raw


def allowed_scope(account: Account, allowlist: Allowlist) -> str:
    """The account's scope, if the allowlist admits it: the gateway never asks Entra (as its app or its
    managed identity) for a token to anything else, such as Storage or Resource Manager."""
    scope = default_scope(account)
    try:
        allowlist.check_scope(scope)
    except NotAllowed as exc:
        raise CredentialProblem(f"auth.scope {exc.problem}", field="scope") from None
    return scope


def _token(info: AccessTokenInfo, started: float, real_started: float) -> Token:
    """azure-identity's expiry is wall-clock; re-anchor it on the keeper's clock (the same one unless a
    test injects its own), measured from when the request started, so it errs on the early side."""
    def anchor(when: float) -> float:
        return started + (float(when) - real_started)

    return Token(value=info.token, expires_on=anchor(info.expires_on), obtained_at=started,
                 refresh_on=anchor(info.refresh_on) if info.refresh_on else None)


_ASSERTION: contextvars.ContextVar[str] = contextvars.ContextVar("gateway_client_assertion")


def _current_assertion() -> str:
    """azure-identity's (synchronous) assertion callable: the assertion this fetch obtained."""
    return _ASSERTION.get()


class EntraSource:
    """A service principal's token from Entra: workload-identity, client-secret or certificate."""

    def __init__(self, account: Account, *, http: AzureHttp, environ: Callable[[], Mapping[str, str]],
                 allowlist: Allowlist, clock: Callable[[], float] = time.time,
                 managed_identity: Callable[[str], AsyncTokenCredential] | None = None) -> None:
        o = account.auth.options
        self._account = account
        self._type = account.auth.type
        self._http = http
        self._clock = clock
        self._allowlist = allowlist
        self.scope = allowed_scope(account, allowlist)
        self._assertion_options: Mapping[str, Any] = o.get("assertion") or {}
        self._assertions: AssertionSource | None = None
        if self._type == "workload-identity":
            self._assertions = build_assertion_source(self._assertion_options, environ, managed_identity,
                                                      allowlist=allowlist)
        self._credential: AsyncTokenCredential | None = None
        self._base = Attempt(auth_type=self._type, tenant_id=str(o.get("tenant_id", "")),
                             client_id=str(o.get("client_id", "")),
                             authority=str(o.get("authority_host") or DEFAULT_AUTHORITY).rstrip("/"),
                             scope=self.scope, secret_env=o.get("secret_env"),
                             certificate_path=o.get("certificate_path"),
                             assertion_source=self._assertion_options.get("source"),
                             assertion_options={k: v for k, v in self._assertion_options.items()
                                                if k != "source"})

    def _build(self) -> AsyncTokenCredential:
        o = self._account.auth.options
        authority = authority_of(o, self._allowlist)
        tenant_id, client_id = str(o["tenant_id"]), str(o["client_id"])
        try:
            if self._type == "client-secret":
                try:
                    value = secret(str(o["secret_env"]), prefix=self._allowlist.secret_prefix,
                                   purpose=f"the client secret of account {self._account.name}")
                except SettingsError as exc:
                    raise CredentialProblem(f"{exc}: set it, or fix auth.secret_env",
                                            field="secret_env") from None
                return azure_sdk.client_secret(tenant_id, client_id, value, authority=authority,
                                               http=self._http)
            if self._type == "certificate":
                return self._certificate(tenant_id, client_id, str(o["certificate_path"]), authority)
            return azure_sdk.client_assertion(tenant_id, client_id, _current_assertion, authority=authority,
                                              http=self._http)
        except ValueError as exc:   # azure-identity's own validation: a malformed tenant id, ...
            field = "tenant_id" if "tenant" in str(exc).lower() else None
            raise CredentialProblem(f"invalid settings: {exc}", field=field) from None

    def _certificate(self, tenant_id: str, client_id: str, path: str, authority: str) -> AsyncTokenCredential:
        """The certificate credential, reading the file only once the allowlist admits where its links
        lead (the key is sent to Entra as a signed assertion: an arbitrary file must never be)."""
        try:
            opened = self._allowlist.credential_file(path)
        except NotAllowed as exc:
            raise CredentialProblem(f"auth.certificate_path {exc.problem}",
                                    field="certificate_path") from None
        try:
            return azure_sdk.certificate(tenant_id, client_id, opened, authority=authority, http=self._http)
        except FileNotFoundError:
            raise CredentialProblem(f"certificate file {path} does not exist: check auth.certificate_path",
                                    field="certificate_path") from None
        except (OSError, ValueError, TypeError) as exc:
            raise CredentialProblem(f"cannot load the certificate at {path} ({type(exc).__name__}: "
                                    f"{str(exc)[:200]}): it must be a PEM file holding the private key and "
                                    "the certificate, unencrypted", field="certificate_path") from None

    async def fetch(self) -> Token:
        if self._credential is None:
            await azure_sdk.load()
            self._credential = self._build()
        attempt = self._base
        reset = None
        if self._assertions is not None:
            assertion = await self._assertions.assertion()
            attempt = _with_claims(attempt, peek_claims(assertion))
            reset = _ASSERTION.set(assertion)
        started, real_started = self._clock(), time.time()
        try:
            info = await self._credential.get_token_info(self.scope)
        except Exception as exc:
            if self._type == "certificate":   # the next attempt re-reads the file: it may be renewed
                await self.aclose_credential()
            raise problem_from_exception(exc, attempt) from None
        finally:
            if reset is not None:
                _ASSERTION.reset(reset)
        return _token(info, started, real_started)

    async def aclose_credential(self) -> None:
        if self._credential is not None:
            credential, self._credential = self._credential, None
            await credential.close()

    async def aclose(self) -> None:
        await self.aclose_credential()
        if self._assertions is not None:
            await self._assertions.aclose()


def _with_claims(attempt: Attempt, claims: dict[str, Any]) -> Attempt:
    return replace(attempt, assertion_claims=claims)


class ManagedIdentitySource:
    """The host's own managed identity's token for the account's scope (auth type managed-identity)."""

    def __init__(self, account: Account, *, allowlist: Allowlist, clock: Callable[[], float] = time.time,
                 factory: Callable[[str | None], AsyncTokenCredential] | None = None) -> None:
        client_id = account.auth.options.get("client_id")
        self._client_id = str(client_id) if client_id else None
        self._clock = clock
        self._factory = factory
        self.scope = allowed_scope(account, allowlist)
        self._credential: AsyncTokenCredential | None = None

    async def fetch(self) -> Token:
        if self._credential is None:
            await azure_sdk.load()
            if self._factory is not None:
                self._credential = self._factory(self._client_id)
            else:
                self._credential = azure_sdk.managed_identity(self._client_id, cached=False)
        started, real_started = self._clock(), time.time()
        try:
            info = await self._credential.get_token_info(self.scope)
        except Exception as exc:
            raise managed_identity_problem(exc, self._client_id, "client_id") from None
        return _token(info, started, real_started)

    async def aclose(self) -> None:
        if self._credential is not None:
            await self._credential.close()
            self._credential = None
