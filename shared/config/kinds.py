"""The resource kinds, in one table: the file format, the store, access decisions, /manage and the
CLI all derive what they know of kinds from `KIND_ROWS`, so a kind cannot be known to one of them
and missed by another (an access rule that forgets `account:` is how a check gets skipped).

Rows are in dependency order (what a resource may refer to comes first): the store creates in
this order and deletes in reverse.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# (file section, table suffix, access prefix, /manage path, singular, may name a workspace, key field)
# section/table None: not stored (the gateway itself); prefix None: not an access resource (admins
# only). The key field names an item in the file and /manage: a price is the price of its model.
# A literal on purpose: tests/infra reads the table suffixes from this source without importing it.
KIND_ROWS = (
    ("identity_providers", "identityproviders", None, "identity-providers", "identity provider", False,
     "name"),
    ("external_identities", "externalidentities", None, "external-identities", "external identity", False,
     "name"),
    # a team is a principal (team:N in bindings) and a resource (its managers change its members)
    ("teams", "teams", "team", "teams", "team", False, "name"),
    ("accounts", "accounts", "account", "accounts", "account", False, "name"),
    ("workspaces", "workspaces", "workspace", "workspaces", "workspace", False, "name"),
    ("models", "models", "model", "models", "model", True, "name"),
    ("mcp_servers", "mcpservers", "mcp-server", "mcp-servers", "MCP server", True, "name"),
    ("agents", "agents", "agent", "agents", "agent", True, "name"),
    # rules and prices name models, workspaces, identities and providers: they come after them all
    ("rate_limits", "ratelimits", None, "rate-limits", "rate limit", False, "name"),
    ("budgets", "budgets", None, "budgets", "budget", False, "name"),
    ("prices", "prices", None, "prices", "price", False, "model"),
    (None, None, "gateway", None, "gateway", False, "name"),
)
GATEWAY = "gateway:default"     # the one resource of kind gateway


@dataclass(frozen=True, slots=True)
class Kind:
    section: str | None         # the file's section and Config's field; None: not stored
    table: str | None           # table suffix under the prefix
    prefix: str | None          # access resource prefix: model -> model:N; None: admins only
    path: str | None            # URL segment under /manage; None: no /manage collection
    singular: str               # in messages: "model 'x' does not exist ..."
    in_workspace: bool          # may name a workspace, whose roles then apply to it
    key: str                    # the field that names an item: "name", or "model" for a price

    def resource(self, name: str) -> str | None:
        return f"{self.prefix}:{name}" if self.prefix else None

    @property
    def ident(self) -> str:
        return (self.path or self.singular).replace("-", "_")


KINDS: tuple[Kind, ...] = tuple(Kind(*row) for row in KIND_ROWS)
STORED: tuple[Kind, ...] = tuple(k for k in KINDS if k.section)
"""The kinds kept in tables, in dependency order."""
MANAGED: tuple[Kind, ...] = tuple(k for k in KINDS if k.path)
"""The kinds /manage serves as collections."""
BY_SECTION: dict[str, Kind] = {k.section: k for k in STORED if k.section}
BY_PREFIX: dict[str, Kind] = {k.prefix: k for k in KINDS if k.prefix}
NAMED = tuple(k for k in STORED if k.prefix)
"""Access resources that are stored: `<prefix>:<name>` names one."""

RESOURCE_RE = re.compile(rf"^({'|'.join(re.escape(k.prefix) for k in NAMED if k.prefix)}):(.+)$")
RESOURCE_FORMS = ", ".join(f"{k.prefix}:" for k in NAMED) + f"<name> or {GATEWAY}"
"""For messages: what a resource may look like."""


def split_resource(resource: str) -> tuple[Kind, str] | None:
    """(kind, name) of `model:gpt-4o` or `gateway:default`; None when it names no kind."""
    if resource == GATEWAY:
        return BY_PREFIX["gateway"], "default"
    m = RESOURCE_RE.match(resource)
    return (BY_PREFIX[m.group(1)], m.group(2)) if m else None
