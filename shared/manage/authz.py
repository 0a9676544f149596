"""Who may do what through /manage (SPEC §3, §6): pure decisions over the snapshot's Policy.

    operation                                   needs
    read a model, MCP server, agent, workspace  viewer on it (or on its workspace)
    change it (PUT)                             editor; moving it into workspace W also editor on W
    create one (PUT of a new name)              editor on the workspace named in the body; else admin
    delete it (its bindings go with it)         manager
    list / bind / unbind its collaborators      manager
    workspaces (create), identity providers,    gateway admin: a principal in GATEWAY_ADMINS, or admin
    external identities, accounts (read and       on gateway:default
    write), admin bindings, /manage/status,
    /manage/explain

A resource the caller has no role on answers 404 exactly as one that does not exist; a kind only
admins manage answers 403 whatever the name, so neither reveals what exists. Roles come from the
snapshot, so a role granted or revoked takes effect within GATEWAY_CONFIG_REFRESH_SECONDS; the
resource's own workspace is read fresh from storage with the resource.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ..access import GATEWAY, RANK, Policy
from ..errors import NotFound, PermissionDenied
from .resources import Kind


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
        return self.policy.decide(self.principals, GATEWAY).role == "admin"

    def rank(self, resource: str, workspace: str | None = None) -> int:
        """The effective role's rank on `resource`, also counting `workspace` (the stored one)."""
        best = RANK.get(self.policy.decide(self.principals, resource).role or "", 0)
        if workspace:
            best = max(best, RANK.get(self.policy.decide(self.principals, f"workspace:{workspace}").role
                                      or "", 0))
        return best


def require_admin(caller: Caller, what: str) -> None:
    if not caller.is_admin:
        raise PermissionDenied(f"only gateway admins may {what}")


def check_resource(caller: Caller, kind: Kind, name: str, operation: str,
                   stored: dict[str, object] | None, desired: dict[str, object] | None = None) -> None:
    """`operation`: read, write (PUT) or delete. Raises NotFound or PermissionDenied."""
    if caller.is_admin:
        return
    if kind.prefix is None:
        raise PermissionDenied(f"only gateway admins manage {kind.path.replace('-', ' ')}")
    resource = f"{kind.prefix}:{name}"
    if stored is None:
        target = (desired or {}).get("workspace") if kind.has_workspace else None
        if operation == "write" and isinstance(target, str) and \
                caller.rank(f"workspace:{target}") >= RANK["editor"]:
            return
        raise not_found(kind.singular, name)
    workspace = stored.get("workspace") if kind.has_workspace else None
    rank = caller.rank(resource, workspace if isinstance(workspace, str) else None)
    if rank == 0:
        raise not_found(kind.singular, name)
    needed = {"read": "viewer", "write": "editor", "delete": "manager"}[operation]
    if rank < RANK[needed]:
        raise PermissionDenied(f"changing {resource} needs {needed}" if operation != "read" else
                               f"reading {resource} needs viewer")
    target = (desired or {}).get("workspace") if kind.has_workspace else None
    if operation == "write" and isinstance(target, str) and target != workspace and \
            caller.rank(f"workspace:{target}") < RANK["editor"]:
        raise PermissionDenied(f"moving {resource} into workspace:{target} needs editor on that workspace")


def can_read(caller: Caller, kind: Kind, name: str, stored: dict[str, object]) -> bool:
    try:
        check_resource(caller, kind, name, "read", stored)
    except (NotFound, PermissionDenied):
        return False
    return True


def check_bindings(caller: Caller, resource: str) -> None:
    """Listing, granting or revoking roles on `resource` needs manager on it (admin on gateway)."""
    if caller.is_admin:
        return
    rank = caller.rank(resource)
    if rank == 0:
        raise NotFound(f"resource {resource!r} does not exist or you do not have access to it",
                       param="resource")
    if rank < RANK["manager"]:
        raise PermissionDenied(f"managing the collaborators of {resource} needs manager")


def manages(caller: Caller, resource: str) -> bool:
    return caller.is_admin or caller.rank(resource) >= RANK["manager"]
