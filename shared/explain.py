"""Explains a token's fate: every check with pass or fail and the reason, the provider chosen and
why, where its key came from, the matched identities and the effective role on a resource."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .access import Decision
from .auth.trace import Trace
from .config.kinds import RESOURCE_FORMS, split_resource
from .errors import InvalidToken

if TYPE_CHECKING:
    from .runtime import Gateway


def _resource_problem(resource: str, gw_view: Any) -> str | None:
    if resource == "gateway:default":
        return None
    found = split_resource(resource)
    if found is None or found[0].section is None:
        return f"{resource!r} is not a resource: use {RESOURCE_FORMS}"
    kind, name = found
    if name not in {item.name for item in getattr(gw_view.config, kind.section)}:
        return f"no {kind.singular} named {name!r} is configured"
    return None


def granted_to(decision: Decision) -> str:
    """The principal that gave the role: "team:partner-eng (member as identity:partner-app)"."""
    if decision.member:
        return f"{decision.principal} (member as {decision.member})"
    return decision.principal or "-"


def teams_of(view: Any, principals: frozenset[str]) -> list[str]:
    """The caller's teams, each with the principal the team lists."""
    expanded = view.policy.expand(sorted(principals))
    return [f"{team} (member as {member})" for team, member in expanded.items() if member]


async def explain(gw: Gateway, token: str, resource: str) -> dict[str, Any]:
    """Never raises for a bad token: the refusal is the answer."""
    view = await gw.snapshot.current()
    token = token.strip()
    if token[:7].lower() == "bearer ":
        token = token[7:].strip()
    trace = Trace()
    report: dict[str, Any] = {"resource": resource, "configuration_version": view.version}
    try:
        principal = await gw.authenticator.authenticate(token, view.config, trace=trace)
    except InvalidToken as exc:
        return {**report, **trace.as_dict(), "principal": None, "identities": [], "role": None,
                "allowed": False, "reason": exc.reason}
    decision = view.policy.decide(principal.principals, resource)
    problem = _resource_problem(resource, view)
    if problem:
        trace.failed("resource", problem)
    elif decision.role is None:
        trace.failed("access", f"no collaborator binding gives {', '.join(sorted(principal.principals))} "
                               f"a role on {resource}")
    else:
        where = "in" if decision.via == "GATEWAY_ADMINS" else "on"
        trace.passed("access", f"{decision.role} via {granted_to(decision)} {where} {decision.via}")
    allowed = problem is None and decision.role is not None
    return {**report, **trace.as_dict(), "principal": principal.user, "email": principal.email,
            "identities": sorted(principal.identities), "teams": teams_of(view, principal.principals),
            "role": decision.role, "role_via": decision.via, "role_principal": decision.principal,
            "role_member": decision.member, "allowed": allowed,
            "reason": None if allowed else trace.checks[-1].detail}
