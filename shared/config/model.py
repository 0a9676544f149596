"""The configuration as frozen values: what the file, the tables and the request path share."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

ROLES: tuple[str, ...] = ("viewer", "editor", "manager", "admin")
API_STYLES: tuple[str, ...] = ("deployments", "v1", "models")
# The api-version an account sends when the caller's cannot be used: the Azure OpenAI surface's GA
# version, and the Azure AI Model Inference API's (its versions are not Azure OpenAI's).
DEFAULT_API_VERSIONS: Mapping[str, str] = MappingProxyType({
    "deployments": "2024-10-21", "v1": "2024-10-21", "models": "2024-05-01-preview"})


def frozen_mapping(value: Mapping[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType(dict(value))


@dataclass(frozen=True, slots=True)
class IdentityProvider:
    name: str
    jwks_uri: str | None = None
    issuer: str | None = None
    audiences: tuple[str, ...] = ()
    unique_id_claim: str = "sub"
    email_claim: str = "email"
    discovery: bool = False               # read jwks_uri from {issuer}/.well-known/openid-configuration
    allow_private_network: bool = False   # JWKS host may resolve to a private (RFC 1918/4193) address
    groups_from_graph: bool = False       # Entra group overage: read the user's groups from Graph
    console_client_id: str | None = None  # a public (SPA) client: the console signs in with code + PKCE
    console_scopes: tuple[str, ...] = ("openid",)   # asked for at sign-in; one names the gateway's API


@dataclass(frozen=True, slots=True)
class ExternalIdentity:
    name: str
    identity_provider: str
    # claim path (dotted for nested claims) -> required value; a list claim must contain it
    claims: Mapping[str, Any] = field(default_factory=lambda: frozen_mapping({}))


@dataclass(frozen=True, slots=True)
class Team:
    """Callers named together: a caller is a member when any of their principals (a user or an
    external identity; teams do not nest) is listed, and then holds every role bound to team:<name>."""
    name: str
    members: tuple[str, ...] = ()       # sorted, so two equal teams compare equal


@dataclass(frozen=True, slots=True)
class AccountAuth:
    type: str                                   # workload-identity, managed-identity, ...
    options: Mapping[str, Any] = field(default_factory=lambda: frozen_mapping({}))


@dataclass(frozen=True, slots=True)
class Account:
    name: str
    kind: str                                   # azure-openai | ai-foundry
    endpoint: str
    auth: AccountAuth
    api_style: str = "deployments"              # deployments | v1 | models (ai-foundry only)
    api_version: str = "2024-10-21"             # the style's default in DEFAULT_API_VERSIONS unless set


@dataclass(frozen=True, slots=True)
class Target:
    account: str
    deployment: str


@dataclass(frozen=True, slots=True)
class Model:
    name: str
    targets: tuple[Target, ...]
    workspace: str | None = None
    max_output_tokens: int | None = None        # the output cap a request is clamped to (limits)


# ---- MCP servers and agents (docs/mcp-and-agents.md) --------------------------------------------------
REMOTE_AUTH_TYPES: tuple[str, ...] = ("none", "headers", "entra", "identity-assertion", "oauth")
DEFAULT_REMOTE_TIMEOUT_S = 120.0
MAX_REMOTE_TIMEOUT_S = 220.0      # below the 230 s within which Functions must start an HTTP response


@dataclass(frozen=True, slots=True)
class RemoteAuth:
    """How the gateway authenticates itself to an MCP server or agent: never with the caller's own
    credentials. `options` by type: headers {headers_env: {Header: GATEWAY_SECRET_...}}; entra
    {scope, account?}; identity-assertion {}; oauth {client_id, client_secret_env?, scopes?,
    authorization_server?}."""
    type: str = "none"                          # one of REMOTE_AUTH_TYPES
    options: Mapping[str, Any] = field(default_factory=lambda: frozen_mapping({}))


@dataclass(frozen=True, slots=True)
class ToolFilter:
    """Which of an MCP server's tools callers see and may call: globs (fnmatch, case-sensitive);
    `deny` wins; an empty `allow` allows every tool not denied."""
    allow: tuple[str, ...] = ()
    deny: tuple[str, ...] = ()

    def allows(self, tool: str) -> bool:
        from fnmatch import fnmatchcase

        if any(fnmatchcase(tool, pattern) for pattern in self.deny):
            return False
        return not self.allow or any(fnmatchcase(tool, pattern) for pattern in self.allow)

    @property
    def everything(self) -> bool:
        return not self.allow and not self.deny


@dataclass(frozen=True, slots=True)
class McpServer:
    name: str
    url: str
    workspace: str | None = None
    auth: RemoteAuth = RemoteAuth()
    tools: ToolFilter = ToolFilter()
    timeout_s: float = DEFAULT_REMOTE_TIMEOUT_S
    allow_private_network: bool = False   # the url's host may resolve to a private (RFC 1918/4193) address


@dataclass(frozen=True, slots=True)
class Agent:
    name: str
    workspace: str | None = None
    url: str | None = None                # the agent's JSON-RPC endpoint; without one it is not served
    auth: RemoteAuth = RemoteAuth()
    timeout_s: float = DEFAULT_REMOTE_TIMEOUT_S
    card_url: str | None = None           # default: <url's origin>/.well-known/agent-card.json
    allow_private_network: bool = False


@dataclass(frozen=True, slots=True)
class Workspace:
    name: str


@dataclass(frozen=True, slots=True)
class Collaborator:
    resource: str       # <kind>:<name> of an access resource (shared.config.kinds), or gateway:default
    principal: str      # user:<provider>/<unique id>, identity:<name> or team:<name>
    role: str           # viewer, editor, manager, admin


# ---- rate limits, budgets and prices (docs/limits.md) ------------------------------------------------
WHEN_FIELDS: tuple[str, ...] = ("principals", "identities", "providers", "models", "workspaces")
PER_DIMENSIONS: tuple[str, ...] = ("user", "identity", "model", "workspace")
LIMIT_METRICS: tuple[str, ...] = ("requests", "tokens")
LIMIT_WINDOWS: tuple[str, ...] = ("minute", "hour", "day")
BUDGET_WINDOWS: tuple[str, ...] = ("day", "month")


@dataclass(frozen=True, slots=True)
class Condition:
    """One key of a rule's `when`: the request's values of `field` must (not, with `negate`) meet
    `values`. A request has one model, one provider and at most one workspace, but may carry several
    principals and identities: `in` holds when any of them is listed, `not_in` when none is."""
    field: str                       # one of WHEN_FIELDS
    values: tuple[str, ...]
    negate: bool = False             # not_in


@dataclass(frozen=True, slots=True)
class Limit:
    metric: str                      # requests | tokens
    amount: int                      # > 0
    window: str                      # minute | hour | day (fixed UTC windows)


@dataclass(frozen=True, slots=True)
class Override:
    """Other limits for the buckets whose values match `bucket`, which names values for some or all of the
    rule's `per` dimensions (a dimension left out matches any value). The first matching override wins."""
    bucket: Mapping[str, str]
    limits: tuple[Limit, ...]


@dataclass(frozen=True, slots=True)
class RateLimit:
    name: str
    limits: tuple[Limit, ...]
    when: tuple[Condition, ...] = ()
    per: tuple[str, ...] = ()        # up to two of PER_DIMENSIONS; () = one bucket shared by all
    overrides: tuple[Override, ...] = ()
    mode: str = "enforce"            # enforce | audit (count and log, never refuse)


@dataclass(frozen=True, slots=True)
class Spend:
    usd: float                       # > 0
    window: str                      # day | month (fixed UTC windows)


@dataclass(frozen=True, slots=True)
class Budget:
    name: str
    spends: tuple[Spend, ...]        # the file's `usd: {day: 50, month: 1000}`
    when: tuple[Condition, ...] = ()
    per: tuple[str, ...] = ()
    on_store_error: str = "deny"     # deny | allow: what a request meets when the counters are unreachable


@dataclass(frozen=True, slots=True)
class Price:
    """USD per million tokens for one gateway model, from `effective` (an ISO date) on; it overrides the
    built-in price table for that model."""
    model: str
    input: float
    output: float
    cached_input: float | None = None
    effective: str | None = None     # the file's `from`

    @property
    def name(self) -> str:
        return self.model


@dataclass(frozen=True, slots=True)
class Config:
    identity_providers: tuple[IdentityProvider, ...] = ()
    external_identities: tuple[ExternalIdentity, ...] = ()
    teams: tuple[Team, ...] = ()
    accounts: tuple[Account, ...] = ()
    workspaces: tuple[Workspace, ...] = ()
    models: tuple[Model, ...] = ()
    mcp_servers: tuple[McpServer, ...] = ()
    agents: tuple[Agent, ...] = ()
    collaborators: tuple[Collaborator, ...] = ()
    rate_limits: tuple[RateLimit, ...] = ()
    budgets: tuple[Budget, ...] = ()
    prices: tuple[Price, ...] = ()
