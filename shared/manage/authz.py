"""Who may do what through /manage: pure decisions over the snapshot's Policy.

    operation                                   needs
    read a model, MCP server, agent,            viewer on it (or on its workspace)
      workspace or account
    change it (PUT)                             editor
    move it to another workspace (or in or      manager on the workspace it leaves and on the one it
      out of one)                                 enters (a side with no workspace: on the resource)
    point a model at an account it did not      viewer on account:N (the same answer as for an account
      target before                               that does not exist)
    create one (PUT of a new name)              editor on the workspace named in the body; else admin
    delete it (its bindings go with it)         manager
    read a team                                 viewer on team:N
    change a team's members                     manager on team:N (editor is not enough: membership
                                                  is a grant); admin when the team holds admin on
                                                  gateway:default
    create or delete a team                     gateway admin
    list / bind / unbind its collaborators      manager
    change or delete an account                 gateway admin: its endpoint and credentials make the
                                                  gateway act with its own identity
    set or change an MCP server's or agent's    gateway admin: they decide where the gateway sends its
      url, card_url, auth or                      own credentials and its users' identity assertions
      allow_private_network (so also create       (editors change tools, timeout_s and, under the move
      one, which sets its url)                    rule, workspace)
    identity providers, external identities,    gateway admin: a principal in GATEWAY_ADMINS, or admin
    rate limits, budgets, prices, bindings on     on gateway:default
    gateway:default, the audit trail,
    /manage/status, /manage/explain

A resource the caller has no role on answers 404 exactly as one that does not exist; a kind only
admins manage answers 403 whatever the name, so neither reveals what exists. Roles come from the
snapshot, so a role granted or revoked takes effect within GATEWAY_CONFIG_REFRESH_SECONDS; the
resource's own workspace is read fresh from storage with the resource, and roles are counted on
exactly the stored workspace, not the one the snapshot last saw.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ..access import ADMIN, RANK, Policy
from ..config.kinds import GATEWAY, Kind
from ..errors import NotFound, PermissionDenied

ADMIN_WRITES = frozenset({"accounts"})   # sections whose resources only admins change
ADMIN_DELETES = frozenset({"teams"})     # sections whose resources only admins delete
NEEDED: dict[str, dict[str, str]] = {
    "teams": {"read": "viewer", "write": "manager", "delete": "admin"},   # members are grants
}
DEFAULT_NEEDED = {"read": "viewer", "write": "editor", "delete": "manager"}
ADMIN_FIELDS: dict[str, tuple[str, ...]] = {
    "mcp_servers": ("url", "auth", "allow_private_network"),
    "agents": ("url", "card_url", "auth", "allow_private_network"),
}
"""Fields only admins set: where the gateway connects, and with which credentials."""


def not_found(kind_singular: str, name: str) -> NotFound:
    return NotFound(f"{kind_singular} {name!r} does not exist or you do not have access to it")


@dataclass(frozen=True, slots=True)
class Caller:
    principals: tuple[str, ...]
    policy: Policy
    name: str                   # the user principal: what the audit trail records

    @classmethod
    def of(cls, policy: Policy, principals: Iterable[str], name: str) -> Caller:
        return cls(tuple(principals), policy, name)

    @property
    def is_admin(self) -> bool:
        return self.policy.rank_on(self.principals, GATEWAY) == ADMIN

    def rank(self, resource: str, workspace: str | None = None) -> int:
        """The rank on `resource`, also counting `workspace` (the stored one), and no other."""
        best = self.policy.rank_on(self.principals, resource)
        if workspace:
            best = max(best, self.policy.rank_on(self.principals, f"workspace:{workspace}"))
        return best

    def effective(self, resource: str) -> int:
        """The rank counting the workspace the snapshot puts `resource` in: for lists, where the
        stored workspace of every row is not at hand."""
        return RANK.get(self.policy.decide(self.principals, resource).role or "", 0)

    def may_see_any(self, kind: Kind) -> bool:
        """False when the snapshot shows the caller can see nothing of `kind` (no storage read needed)."""
        reach = self.policy.reach(self.principals)
        return "gateway" in reach or kind.prefix in reach or (kind.in_workspace and "workspace" in reach)

    def manages_any(self) -> bool:
        """False when the caller manages nothing (the collaborators list is then empty)."""
        return bool(self.policy.reach(self.principals))


def require_admin(caller: Caller, what: str) -> None:
    if not caller.is_admin:
        raise PermissionDenied(f"only gateway admins may {what}")


def _workspace(doc: dict[str, object] | None) -> str | None:
    value = (doc or {}).get("workspace")
    return value if isinstance(value, str) else None


def check_resource(caller: Caller, kind: Kind, name: str, operation: str,
                   stored: dict[str, object] | None, desired: dict[str, object] | None = None) -> None:
    """`operation`: read, write (PUT) or delete. Raises NotFound or PermissionDenied."""
    if caller.is_admin:
        return
    resource = kind.resource(name)
    if resource is None:
        raise PermissionDenied(f"only gateway admins manage {(kind.path or '').replace('-', ' ')}")
    if stored is None:
        target = _workspace(desired) if kind.in_workspace else None
        if operation == "write" and target and caller.rank(f"workspace:{target}") >= RANK["editor"]:
            return
        raise not_found(kind.singular, name)
    source = _workspace(stored) if kind.in_workspace else None
    rank = caller.rank(resource, source)
    if rank == 0:
        raise not_found(kind.singular, name)
    if operation != "read" and kind.section in ADMIN_WRITES:
        raise PermissionDenied(f"only gateway admins change or delete {kind.path}")
    if operation == "delete" and kind.section in ADMIN_DELETES:
        raise PermissionDenied(f"only gateway admins delete {kind.path}")
    needed = NEEDED.get(kind.section or "", DEFAULT_NEEDED)[operation]
    if rank < RANK[needed]:
        raise PermissionDenied(f"changing {resource} needs {needed}" if operation != "read" else
                               f"reading {resource} needs viewer")
    if operation == "write" and kind.in_workspace and _workspace(desired) != source:
        _check_move(caller, resource, source, _workspace(desired))


def check_admin_fields(caller: Caller, kind: Kind, stored: dict[str, object] | None,
                       desired: dict[str, object]) -> None:
    """An editor who could set an MCP server's url or auth could point the gateway's credentials, or
    its users' identity assertions, at a host of their choosing: those fields need admin. `stored`
    and `desired` are documents as item_document writes them (defaults left out)."""
    fields = ADMIN_FIELDS.get(kind.section or "")
    if caller.is_admin or not fields:
        return
    changed = [f for f in fields if (stored or {}).get(f) != desired.get(f)]
    if changed:
        raise PermissionDenied(f"only gateway admins set the {', '.join(changed)} of {kind.singular}s "
                               "(they decide where the gateway sends credentials)", param=changed[0])


def _check_move(caller: Caller, resource: str, source: str | None, target: str | None) -> None:
    """Moving between workspaces hands the resource from one set of managers to another: it needs
    manager on both sides, so an editor cannot carry it to where they are manager."""
    def side(workspace: str | None) -> int:
        return caller.rank(f"workspace:{workspace}") if workspace else caller.rank(resource)

    if side(source) < RANK["manager"] or side(target) < RANK["manager"]:
        where = (f"from workspace:{source}" if source else "") + (f" into workspace:{target}" if target
                                                                  else " out of its workspace")
        raise PermissionDenied(f"moving {resource} {where.strip()} needs manager on the workspace it "
                               "leaves and on the one it enters")


def check_admin_team(caller: Caller, team: str, holds_admin: bool) -> None:
    """The members of a team holding admin on gateway:default are gateway admins: choosing them is an
    admin's act, or the team's managers could make anyone an admin."""
    if holds_admin and not caller.is_admin:
        raise PermissionDenied(f"team:{team} holds admin on {GATEWAY}: only gateway admins change its "
                               "members")


def may_target(caller: Caller, account: str) -> bool:
    """May the caller point a model at this account (viewer on account:N, or admin)?"""
    return caller.is_admin or caller.rank(f"account:{account}") >= RANK["viewer"]


def can_read(caller: Caller, kind: Kind, name: str, stored: dict[str, object]) -> bool:
    try:
        check_resource(caller, kind, name, "read", stored)
    except (NotFound, PermissionDenied):
        return False
    return True


def check_bindings(caller: Caller, resource: str, workspace: str | None) -> None:
    """Listing, granting or revoking roles on `resource` (in its stored `workspace`) needs manager
    on it; on gateway:default, admin."""
    if caller.is_admin:
        return
    if resource == GATEWAY:
        raise PermissionDenied(f"only gateway admins manage the collaborators of {GATEWAY}")
    rank = caller.rank(resource, workspace)
    if rank == 0:
        raise NotFound(f"resource {resource!r} does not exist or you do not have access to it",
                       param="resource")
    if rank < RANK["manager"]:
        raise PermissionDenied(f"managing the collaborators of {resource} needs manager")


def manages(caller: Caller, resource: str) -> bool:
    return caller.is_admin or (resource != GATEWAY and caller.effective(resource) >= RANK["manager"])
