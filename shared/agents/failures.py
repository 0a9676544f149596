"""What a failed exchange with an agent means to the caller: a value of the gateway's error family.

The messages come from the remote-call layer, which never puts an address or a credential in them;
nothing here adds the agent's URL or anything the agent said.
"""

from __future__ import annotations

from ..errors import GatewayError, PermissionDenied, RateLimited, Unavailable, UpstreamError, UpstreamTimeout
from ..remote.auth import RemoteAuthProblem
from ..remote.client import RemoteFailure


def from_remote(failure: RemoteFailure) -> GatewayError:
    if failure.kind == "timeout":
        return UpstreamTimeout(f"the agent did not answer in time: {failure.message}")
    return UpstreamError(f"the agent could not be used: {failure.message}")


def from_auth(problem: RemoteAuthProblem) -> GatewayError:
    """`unavailable` is the operator's to fix; `authorization_required` the caller's (at the URL the
    gateway built)."""
    if problem.kind == "authorization_required":
        where = f"; authorize the gateway at {problem.authorize_url}" if problem.authorize_url else ""
        return PermissionDenied(f"the gateway cannot call this agent for you yet: {problem.message}{where}")
    return Unavailable(f"the gateway cannot authenticate to this agent: {problem.message}")


def from_status(status: int, retry_after: str | None) -> GatewayError:
    """An agent's HTTP error: its body and headers stay with the gateway (they are the agent's words,
    and may name its internals); a 429's Retry-After is passed on when it is a plain number."""
    if status == 429:
        seconds = int(retry_after) if retry_after and retry_after.isdigit() and len(retry_after) < 7 else None
        return RateLimited("the agent is rate limiting the gateway; try again later", seconds)
    if status in (401, 403):
        return UpstreamError(f"the agent refused the gateway's credentials (HTTP {status})")
    return UpstreamError(f"the agent answered HTTP {status}")


def outcome(error: GatewayError) -> str:
    """The audit's outcome for a call that ended in `error`."""
    if error.code == "upstream_timeout":
        return "timeout"
    return "refused" if error.status < 500 else "failed"
