"""Decides a principal's effective role on a resource (SPEC §6); pure, no I/O."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from .config.model import Config

RANK: dict[str, int] = {"viewer": 1, "editor": 2, "manager": 3, "admin": 4}
ROLE_OF_RANK: dict[int, str] = {v: k for k, v in RANK.items()}
GATEWAY = "gateway:default"


@dataclass(frozen=True, slots=True)
class Decision:
    role: str | None
    via: str | None         # the binding that gave the role, e.g. "workspace:research" or "GATEWAY_ADMINS"


class Policy:
    """Bindings indexed once per configuration, so a decision is a few dict lookups."""

    def __init__(self, config: Config, admins: frozenset[str]) -> None:
        self._admins = admins
        self._bindings: dict[str, dict[str, int]] = {}
        for c in config.collaborators:
            self._bindings.setdefault(c.resource, {})[c.principal] = RANK[c.role]
        self._workspace: dict[str, str] = {}
        for kind, items in (("model", config.models), ("mcp-server", config.mcp_servers),
                            ("agent", config.agents)):
            for item in items:
                if item.workspace:
                    self._workspace[f"{kind}:{item.name}"] = item.workspace

    def decide(self, principals: Iterable[str], resource: str) -> Decision:
        principals = tuple(principals)
        if any(p in self._admins for p in principals):
            return Decision("admin", "GATEWAY_ADMINS")
        best, via = 0, None
        scopes = [resource, GATEWAY]
        workspace = self._workspace.get(resource)
        if workspace:
            scopes.insert(1, f"workspace:{workspace}")
        for scope in scopes:
            bound = self._bindings.get(scope)
            if not bound:
                continue
            for p in principals:
                rank = bound.get(p, 0)
                if scope == GATEWAY and rank != RANK["admin"]:
                    continue  # only admin on gateway:default reaches other resources
                if rank > best:
                    best, via = rank, scope
        return Decision(ROLE_OF_RANK.get(best), via)

    def allows(self, principals: Iterable[str], resource: str, needed: str) -> bool:
        role = self.decide(principals, resource).role
        return role is not None and RANK[role] >= RANK[needed]
