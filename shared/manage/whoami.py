"""`GET /manage/whoami?resource=`: the caller's own principals and their effective role on one resource.

The console hides the buttons a caller's role does not allow (the API refuses them anyway); only the
caller's own role is told, and a resource they have no role on answers `null` exactly as one that does
not exist, so this reveals nothing a GET of the resource would not.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.responses import JSONResponse, Response

from ..access import ADMIN, RANK
from ..callers import authenticate
from ..config.kinds import split_resource
from ..config.schema import ConfigError, parse_resource
from ..errors import InvalidRequest
from ..http import Call
from . import authz

if TYPE_CHECKING:
    from ..runtime import Gateway

ROLE_OF_RANK = {rank: role for role, rank in RANK.items()}


async def _workspace(gw: Gateway, resource: str) -> str | None:
    """The stored workspace of `resource`, if its kind lives in workspaces."""
    found = split_resource(resource)
    if found is None or found[0].section is None or not found[0].in_workspace:
        return None
    entity = await gw.store.get(found[0].section, found[1])
    workspace = entity[0].get("workspace") if entity else None
    return workspace if isinstance(workspace, str) else None


async def whoami_work(call: Call) -> Response:
    gw, view, principal = await authenticate(call)
    caller = authz.Caller.of(view.policy, principal.principals, principal.user)
    raw = call.request.query_params.get("resource")
    role: str | None = None
    if raw is not None:
        try:
            resource = parse_resource(raw, "resource")
        except ConfigError as exc:
            raise InvalidRequest(f"resource: {exc.problem}", param="resource") from None
        rank = ADMIN if caller.is_admin else caller.rank(resource, await _workspace(gw, resource))
        role = ROLE_OF_RANK.get(rank)
    return JSONResponse({"principal": caller.name, "principals": list(caller.principals),
                         "admin": caller.is_admin, "resource": raw, "role": role})
