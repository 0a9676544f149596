"""The gateway's own Microsoft Graph token, for reading an Entra user's groups on group overage.

It comes from the gateway's managed identity (AZURE_CLIENT_ID picks a user-assigned one), through the
same cached, refreshed credential machinery as the accounts, with an allowlist of its own that admits
exactly one scope: the Graph resource of GATEWAY_GRAPH_URL's cloud, which the gateway chooses (an
operator's setting, never a value from the configuration tables). The accounts' allowlist never admits
Graph, so no account or MCP server can ask for this token.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import fields
from urllib.parse import urlsplit

from ..config.allowlist import Allowlist, NotAllowed, is_loopback_host
from ..config.model import Account, AccountAuth, frozen_mapping
from .credentials import Credentials

GRAPH_SCOPE = "https://graph.microsoft.com/.default"
GRAPH_SCOPES = frozenset({GRAPH_SCOPE, "https://graph.microsoft.us/.default",
                          "https://dod-graph.microsoft.us/.default",
                          "https://microsoftgraph.chinacloudapi.cn/.default"})
"""Microsoft Graph in each national cloud."""
ACCOUNT = "microsoft-graph"     # the synthetic account's name in status and logs


def graph_scope(graph_url: str) -> str:
    """`<graph origin>/.default`; the public cloud's for a loopback Graph (development and tests)."""
    parts = urlsplit(graph_url)
    if is_loopback_host(parts.hostname or ""):
        return GRAPH_SCOPE
    return f"https://{(parts.hostname or '').lower()}/.default"


class GraphOnly(Allowlist):
    """The allowlist of the Graph credential: its one scope, its one endpoint."""

    __slots__ = ()

    @classmethod
    def of(cls, allowlist: Allowlist) -> GraphOnly:
        return cls(**{f.name: getattr(allowlist, f.name) for f in fields(allowlist)})

    def check_scope(self, scope: str) -> None:
        if scope not in GRAPH_SCOPES:
            raise NotAllowed("must be Microsoft Graph's /.default scope in an Azure cloud (GATEWAY_GRAPH_URL "
                             "names another host)")

    def check_endpoint(self, endpoint: str, *, foundry: bool = False) -> None:
        return      # GATEWAY_GRAPH_URL, checked by the settings; the token is only sent there


def graph_headers(graph_url: str, client_id: str, allowlist: Allowlist
                  ) -> tuple[Callable[[], Awaitable[dict[str, str]]], Credentials]:
    """The Authorization header for Graph, and the registry holding its credential (to close)."""
    credentials = Credentials(allowlist=GraphOnly.of(allowlist))
    options = {"scope": graph_scope(graph_url), **({"client_id": client_id} if client_id else {})}
    account = Account(name=ACCOUNT, kind="azure-openai", endpoint=graph_url,
                      auth=AccountAuth(type="managed-identity", options=frozen_mapping(options)))

    async def headers() -> dict[str, str]:
        return await credentials.for_account(account).auth_headers()

    return headers, credentials
