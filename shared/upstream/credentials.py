"""Gives each upstream account the headers that authenticate the gateway to it.

Every auth kind of the configuration (docs/configuration.md) sits behind one interface,
`UpstreamCredential`. `Credentials` builds one
per account (an api key, or a bearer token kept by a `TokenKeeper` over a token source), rebuilds it
when the account's configuration changes, runs the timer's canary (`refresh_all`) and reports each
account's token health (`status`). A credential that cannot be had becomes `Unavailable` (503) whose
message names the field to fix. Tokens live in this process's memory only, and are never logged.

    module            job
    credentials.py    this registry, and the per-account credentials
    tokens.py         caching and refresh-ahead of one token
    sources.py        azure-identity credential per auth type, scope and authority per account
    assertions.py     client assertions: managed identity, token file, Kubernetes TokenRequest
    entra.py          AADSTS codes and transport failures in words naming the field to fix
    azure_sdk.py      lazy azure-identity construction (transport settings, no inner cache)
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Protocol

from ..config.allowlist import Allowlist
from ..config.model import Account
from ..errors import Unavailable
from ..settings import SettingsError, environment, secret
from .azure_sdk import AzureHttp
from .problem import CredentialProblem
from .sources import EntraSource, ManagedIdentitySource
from .tokens import RefreshPolicy, TokenKeeper, TokenSource

if TYPE_CHECKING:
    from azure.core.credentials_async import AsyncTokenCredential

log = logging.getLogger("gateway.upstream.credentials")

ENTRA_TYPES = frozenset({"workload-identity", "client-secret", "certificate"})
CANARY_TIMEOUT_SECONDS = 90


class UpstreamCredential(Protocol):
    async def auth_headers(self) -> dict[str, str]:
        """Headers for one upstream request; raises Unavailable naming what to fix."""
        ...

    async def aclose(self) -> None: ...


class _Kept(UpstreamCredential, Protocol):
    """What the registry needs beyond the public interface: the canary and the health report."""

    async def refresh(self) -> None: ...

    def status(self) -> dict[str, object]: ...


def _unavailable(account: str, problem: CredentialProblem) -> Unavailable:
    return Unavailable(f"account {account}: {problem.message}")


def _report(auth: str, *, scope: str | None = None, expires_on: float | None = None,
            refreshed_at: float | None = None, attempted_at: float | None = None,
            problem: CredentialProblem | None = None) -> dict[str, object]:
    """One account's line of `status()`; the same keys for every auth type."""
    return {"auth": auth, "scope": scope, "expires_on": round(expires_on) if expires_on else None,
            "refreshed_at": refreshed_at, "last_attempt_at": attempted_at,
            "error": problem.message if problem else None, "field": problem.field if problem else None,
            "trace_id": problem.trace_id if problem else None}


class ApiKeyCredential:
    """An Azure OpenAI key read from the environment variable the account names (key_env)."""

    def __init__(self, account: Account, prefix: str, clock: Callable[[], float] = time.time) -> None:
        self._account = account.name
        self._env = str(account.auth.options["key_env"])
        self._prefix = prefix
        self._clock = clock
        self._key: str | None = None
        self._read_at: float | None = None
        self._problem: CredentialProblem | None = None

    def _read(self) -> str:
        try:
            key = secret(self._env, prefix=self._prefix, purpose=f"the api key of account {self._account}")
        except SettingsError as exc:
            self._problem = CredentialProblem(f"{exc}: set it, or fix auth.key_env", field="key_env")
            raise self._problem from None
        self._key, self._read_at, self._problem = key, self._clock(), None
        return key

    async def auth_headers(self) -> dict[str, str]:
        try:
            return {"api-key": self._key if self._key is not None else self._read()}
        except CredentialProblem as problem:
            raise _unavailable(self._account, problem) from None

    async def refresh(self) -> None:
        self._read()

    def status(self) -> dict[str, object]:
        return _report("api-key", refreshed_at=self._read_at, attempted_at=self._read_at,
                       problem=self._problem)

    async def aclose(self) -> None:
        return None


class BearerCredential:
    """An Entra access token for the account's scope, kept fresh by a TokenKeeper."""

    def __init__(self, account: Account, source: TokenSource, scope: str, *, policy: RefreshPolicy,
                 clock: Callable[[], float]) -> None:
        self._account = account.name
        self._type = account.auth.type
        self.scope = scope
        self._keeper = TokenKeeper(source, policy=policy, clock=clock, account=account.name)

    async def auth_headers(self) -> dict[str, str]:
        try:
            return {"Authorization": f"Bearer {await self._keeper.token()}"}
        except CredentialProblem as problem:
            raise _unavailable(self._account, problem) from None

    async def refresh(self) -> None:
        await self._keeper.refresh()

    def status(self) -> dict[str, object]:
        k = self._keeper
        return _report(self._type, scope=self.scope, expires_on=k.held.expires_on if k.held else None,
                       refreshed_at=k.refreshed_at, attempted_at=k.attempted_at, problem=k.problem)

    async def aclose(self) -> None:
        await self._keeper.aclose()


class _Broken:
    """An account whose credential cannot even be built (say, an unknown auth type): every use says why."""

    def __init__(self, account: Account, problem: CredentialProblem) -> None:
        self._account, self._type, self._problem = account.name, account.auth.type, problem

    async def auth_headers(self) -> dict[str, str]:
        raise _unavailable(self._account, self._problem)

    async def refresh(self) -> None:
        raise self._problem

    def status(self) -> dict[str, object]:
        return _report(self._type, problem=self._problem)

    async def aclose(self) -> None:
        return None


class Credentials:
    """One credential per account, kept while the account's configuration is unchanged.

    Collaborators (all optional; `Credentials(allowlist=<the settings' allowlist>)` is the production
    wiring):
    - allowlist: what an account may name (secret variables, scope, authority, endpoint, credential
      files, Kubernetes API server); an account outside it gets no credential at all, so nothing is
      read, fetched or sent for it (files are checked again, links resolved, as they are read).
      Defaults to the built-in values only.
    - environ: the environment, read lazily (the Kubernetes service host and port); defaults to
      `shared.settings.environment()`. Secrets are read through `shared.settings.secret`.
    - http: transport settings for Entra (a private CA file, retries, timeouts).
    - policy: when tokens are refreshed and how failures are held.
    - clock: epoch seconds; tests move it to exercise expiry.
    - managed_identity: builds the managed-identity credential for a client id (None: the host's own,
      as azure-identity finds it in the environment).
    """

    def __init__(self, *, allowlist: Allowlist | None = None, environ: Mapping[str, str] | None = None,
                 http: AzureHttp | None = None, policy: RefreshPolicy | None = None,
                 clock: Callable[[], float] = time.time,
                 managed_identity: Callable[[str | None], AsyncTokenCredential] | None = None) -> None:
        self._allowlist = allowlist or Allowlist()
        self._environ = environ
        self._http = http or AzureHttp()
        self._policy = policy or RefreshPolicy()
        self._clock = clock
        self._managed_identity = managed_identity
        self._by_account: dict[str, tuple[Account, _Kept]] = {}
        self._retiring: set[asyncio.Task[None]] = set()
        self._orphans: list[_Kept] = []    # replaced outside a running loop: closed with the registry

    def _env(self) -> Mapping[str, str]:
        if self._environ is None:
            self._environ = environment()
        return self._environ

    def for_account(self, account: Account) -> UpstreamCredential:
        held = self._by_account.get(account.name)
        if held is not None and (held[0] is account or held[0] == account):
            return held[1]
        credential = self._build(account)
        self._by_account[account.name] = (account, credential)
        if held is not None:
            self._retire(held[1])
        return credential

    def _build(self, account: Account) -> _Kept:
        kind = account.auth.type
        try:
            refused = self._allowlist.account_problem(account)
            if refused is not None:  # stored before the allowlist applied, or under other settings
                raise CredentialProblem(f"{refused.field} {refused.problem}; the account is not used",
                                        field=refused.field.removeprefix("auth."))
            if kind == "api-key":
                return ApiKeyCredential(account, self._allowlist.secret_prefix, self._clock)
            source: EntraSource | ManagedIdentitySource
            if kind in ENTRA_TYPES:
                source = EntraSource(account, http=self._http, environ=self._env, allowlist=self._allowlist,
                                     clock=self._clock, managed_identity=self._managed_identity)
            elif kind == "managed-identity":
                source = ManagedIdentitySource(account, allowlist=self._allowlist, clock=self._clock,
                                               factory=self._managed_identity)
            else:
                raise CredentialProblem(f"auth type {kind!r} is not supported by this version of the gateway",
                                        field="type")
        except CredentialProblem as problem:
            return _Broken(account, problem)
        return BearerCredential(account, source, source.scope, policy=self._policy, clock=self._clock)

    def _retire(self, credential: _Kept) -> None:
        """Close a replaced credential without cutting off a request that is using it right now."""
        try:
            task = asyncio.get_running_loop().create_task(credential.aclose())
        except RuntimeError:
            self._orphans.append(credential)
            return
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)

    async def refresh_all(self, accounts: Iterable[Account]) -> dict[str, str | None]:
        """The timer's canary: get a token for every account now; account name -> error text or None.
        The token stays in this process's memory like any other and is never reported or stored.
        Accounts no longer configured are forgotten."""
        wanted = {a.name: a for a in accounts}
        for name in list(self._by_account):
            if name not in wanted:
                self._retire(self._by_account.pop(name)[1])

        names = list(wanted)
        results = await asyncio.gather(*(self._canary(wanted[n]) for n in names))
        return dict(zip(names, results, strict=True))

    async def _canary(self, account: Account) -> str | None:
        """Get a token for `account` now; the error text, or None."""
        self.for_account(account)
        credential = self._by_account[account.name][1]
        try:
            async with asyncio.timeout(CANARY_TIMEOUT_SECONDS):
                await credential.refresh()
        except CredentialProblem as problem:
            return problem.message
        except TimeoutError:
            return f"no token within {CANARY_TIMEOUT_SECONDS} s"
        return None

    async def check(self, account: Account) -> dict[str, object]:
        """The canary for one account, on an operator's request: its status line after trying (expiry,
        or the error in words and the field to fix). The token itself is never part of it."""
        error = await self._canary(account)
        report = self._by_account[account.name][1].status()
        return {**report, "error": report["error"] or error}

    def status(self, accounts: Iterable[Account] | None = None) -> dict[str, dict[str, object]]:
        """Per account: auth type, scope, token expiry (epoch seconds) or None, last refresh time, last
        error and the field to fix. Never a token. With `accounts` (the configured ones), exactly those
        are reported, the ones not used yet with empty values (building them does no I/O)."""
        if accounts is not None:
            configured = list(accounts)
            for account in configured:
                self.for_account(account)
            return {name: self._by_account[name][1].status() for name in sorted({a.name for a in configured})}
        return {name: credential.status() for name, (_, credential) in sorted(self._by_account.items())}

    async def aclose(self) -> None:
        held = [credential for _, credential in self._by_account.values()] + self._orphans
        self._by_account.clear()
        self._orphans = []
        for credential in held:
            await credential.aclose()
        if self._retiring:
            await asyncio.gather(*self._retiring, return_exceptions=True)
