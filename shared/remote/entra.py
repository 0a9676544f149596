"""Outbound auth `entra`: an Entra access token for the MCP server's or agent's own scope.

The token comes from a credential the gateway already holds. With `auth.account`, that account's
credential kind (workload identity, managed identity, client secret, certificate) asks for the server's
scope instead of the account's; without it, the gateway's own managed identity (AZURE_CLIENT_ID picks a
user-assigned one). Each server gets a synthetic account in a registry of its own (shared/upstream/
credentials.py: cached, refreshed ahead of expiry, failures named by field), held to an allowlist whose
scope rule is the remote one (an application ID URI or GATEWAY_ENTRA_SCOPES, never Resource Manager,
Storage, Key Vault or Graph) and whose endpoint rule is the server URL's: the accounts' own rules are
untouched, so an account still cannot name an api:// scope.
"""

from __future__ import annotations

from dataclasses import fields
from typing import TYPE_CHECKING

from ..config.allowlist import Allowlist
from ..config.model import Account, AccountAuth, Agent, McpServer, frozen_mapping
from ..errors import Unavailable
from ..upstream.credentials import ENTRA_TYPES
from .auth import RemoteAuthProblem

if TYPE_CHECKING:
    from ..auth.identities import Principal
    from ..config.snapshot import View
    from ..upstream.credentials import Credentials


class RemoteScopes(Allowlist):
    """The gateway's allowlist for synthetic accounts that stand for an MCP server or agent."""

    __slots__ = ()

    @classmethod
    def of(cls, allowlist: Allowlist) -> RemoteScopes:
        return cls(**{f.name: getattr(allowlist, f.name) for f in fields(allowlist)})

    def check_scope(self, scope: str) -> None:
        self.check_remote_scope(scope)

    def check_endpoint(self, endpoint: str, *, foundry: bool = False) -> None:
        self.check_remote_url(endpoint)


def _label(target: McpServer | Agent) -> str:
    return f"{'mcp-server' if isinstance(target, McpServer) else 'agent'}:{target.name}"


class EntraMode:
    """`headers()` for auth type entra; `credentials` is a registry built on `RemoteScopes`."""

    def __init__(self, credentials: Credentials, *, client_id: str | None = None) -> None:
        self._credentials = credentials
        self._client_id = client_id or None     # the gateway's managed identity (AZURE_CLIENT_ID)

    def account_for(self, target: McpServer | Agent, view: View) -> Account:
        """The synthetic account: the named account's credential (or the managed identity) with the
        server's scope, its endpoint the server's URL."""
        scope = str(target.auth.options.get("scope", ""))
        named = target.auth.options.get("account")
        if named is None:
            options = {"scope": scope, **({"client_id": self._client_id} if self._client_id else {})}
            auth = AccountAuth(type="managed-identity", options=frozen_mapping(options))
        else:
            account = view.accounts.get(str(named))
            if account is None:
                raise RemoteAuthProblem("unavailable",
                                        f"auth.account {named} does not exist or is not usable")
            if account.auth.type not in ENTRA_TYPES and account.auth.type != "managed-identity":
                raise RemoteAuthProblem("unavailable", f"auth.account {named} does not get Entra tokens "
                                        f"(its auth type is {account.auth.type})")
            auth = AccountAuth(type=account.auth.type,
                               options=frozen_mapping({**account.auth.options, "scope": scope}))
        return Account(name=_label(target), kind="azure-openai", endpoint=str(target.url or ""), auth=auth)

    async def headers(self, target: McpServer | Agent, principal: Principal, view: View) -> dict[str, str]:
        account = self.account_for(target, view)
        try:
            return await self._credentials.for_account(account).auth_headers()
        except Unavailable as exc:
            raise RemoteAuthProblem("unavailable", exc.public) from None

