"""Decides a principal's effective role on a resource; pure, no I/O.

Resources are `<kind>:<name>` of the access kinds in shared.config.kinds (models, MCP servers, agents,
accounts, workspaces) and gateway:default. The effective role is the highest over all of the caller's
principals, counting bindings on the resource, on its workspace, and `admin` on gateway:default (or a
principal in GATEWAY_ADMINS). A caller's principals include `team:<name>` of every team listing one of
them: the member -> teams index is built once per configuration, so membership costs a dict lookup per
principal and no storage read. No binding, no access.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from .config.kinds import GATEWAY, STORED
from .config.model import Config

RANK: dict[str, int] = {"viewer": 1, "editor": 2, "manager": 3, "admin": 4}
ROLE_OF_RANK: dict[int, str] = {v: k for k, v in RANK.items()}
ADMIN = RANK["admin"]


@dataclass(frozen=True, slots=True)
class Decision:
    role: str | None
    via: str | None         # the binding that gave the role, e.g. "workspace:research" or "GATEWAY_ADMINS"
    principal: str | None = None    # the principal bound there: the caller's own, or a team:<name>
    member: str | None = None       # for a team: the caller's principal the team lists


class Policy:
    """Bindings indexed once per configuration, so a decision is a few dict lookups."""

    def __init__(self, config: Config, admins: frozenset[str]) -> None:
        self._admins = admins
        teams_of: dict[str, list[str]] = {}
        for team in config.teams:
            for member in team.members:
                teams_of.setdefault(member, []).append(f"team:{team.name}")
        self._teams_of = {m: tuple(teams) for m, teams in teams_of.items()}
        self._bindings: dict[str, dict[str, int]] = {}
        reach: dict[str, set[str]] = {}
        for c in config.collaborators:
            self._bindings.setdefault(c.resource, {})[c.principal] = RANK[c.role]
            reach.setdefault(c.principal, set()).add(c.resource.partition(":")[0])
        self._reach = {p: frozenset(kinds) for p, kinds in reach.items()}
        self._workspace: dict[str, str] = {}
        for kind in STORED:
            if kind.in_workspace and kind.section:
                for item in getattr(config, kind.section):
                    if item.workspace:
                        self._workspace[f"{kind.prefix}:{item.name}"] = item.workspace

    def expand(self, principals: Iterable[str]) -> dict[str, str | None]:
        """The caller's principals and their teams: principal -> the member it came through (None for
        the caller's own). Teams do not nest, so one step is all there is."""
        own = tuple(principals)
        out: dict[str, str | None] = dict.fromkeys(own)
        for p in own:
            for team in self._teams_of.get(p, ()):
                out.setdefault(team, p)
        return out

    def decide(self, principals: Iterable[str], resource: str) -> Decision:
        """The effective role, counting the workspace this configuration puts the resource in."""
        principals = tuple(principals)
        listed = next((p for p in principals if p in self._admins), None)
        if listed:
            return Decision("admin", "GATEWAY_ADMINS", listed)
        expanded = self.expand(principals)
        best, via, who = 0, None, None
        scopes = [resource, GATEWAY]
        workspace = self._workspace.get(resource)
        if workspace:
            scopes.insert(1, f"workspace:{workspace}")
        for scope in scopes:
            bound = self._bindings.get(scope)
            if not bound:
                continue
            for p in expanded:
                rank = bound.get(p, 0)
                if scope == GATEWAY and rank != ADMIN:
                    continue  # only admin on gateway:default reaches other resources
                if rank > best:
                    best, via, who = rank, scope, p
        return Decision(ROLE_OF_RANK.get(best), via, who, expanded.get(who) if who else None)

    def rank_on(self, principals: Iterable[str], scope: str) -> int:
        """The rank bound on exactly `scope` (its workspace not counted), or admin's anywhere."""
        principals = tuple(principals)
        if any(p in self._admins for p in principals):
            return ADMIN
        bound, gateway = self._bindings.get(scope, {}), self._bindings.get(GATEWAY, {})
        best = 0
        for p in self.expand(principals):
            if gateway.get(p) == ADMIN:
                return ADMIN
            best = max(best, bound.get(p, 0))
        return best

    def reach(self, principals: Iterable[str]) -> frozenset[str]:
        """The kinds (model, workspace, gateway, ...) the principals hold some role on: a caller
        whose reach misses a kind can see none of it, which is known without reading storage."""
        principals = tuple(principals)
        if any(p in self._admins for p in principals):
            return frozenset({"gateway"})
        out: frozenset[str] = frozenset()
        for p in self.expand(principals):
            out |= self._reach.get(p, frozenset())
        return out

    def allows(self, principals: Iterable[str], resource: str, needed: str) -> bool:
        role = self.decide(principals, resource).role
        return role is not None and RANK[role] >= RANK[needed]
