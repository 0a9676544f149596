"""The agent plane's handlers: a JSON-RPC request relayed to an agent, and the agent's card.

Both authenticate as every route does, then need `viewer` on `agent:<name>` (or its workspace). An
unknown agent, an agent without a `url`, and an agent the caller has no role on are the same 404, so a
caller cannot learn which agents exist. Every message (`SendMessage`, `SendStreamingMessage`,
`message/send`, `message/stream`) is audited once it is over, whatever its outcome.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from starlette.responses import Response

from ..callers import authenticate
from ..errors import GatewayError, NotFound
from ..remote.audit import RemoteCall, args_hash
from ..remote.auth import RemoteAuthProblem
from .card import agent_card
from .failures import from_auth, outcome
from .relay import Done, outbound_headers, relay
from .rpc import RpcRequest, as_rpc, parse_request

if TYPE_CHECKING:
    from ..auth.identities import Principal
    from ..config.model import Agent
    from ..config.snapshot import View
    from ..http import Call
    from ..remote.audit import RemoteAudit

MESSAGE_METHODS = frozenset({"SendMessage", "SendStreamingMessage", "message/send", "message/stream"})
NO_SUCH_AGENT = "no such agent, or you do not have access to it"


def _visible(view: View, principal: Principal, name: str) -> Agent | None:
    agent = view.agents.get(name)
    if agent is None or agent.url is None:
        return None
    if not view.policy.allows(principal.principals, f"agent:{agent.name}", "viewer"):
        return None
    return agent


def _endpoint(public_url: str, agent: Agent) -> str:
    return f"{public_url}/agents/{agent.name}"


async def message(call: Call) -> Response:
    started = time.perf_counter()
    gw, view, principal = await authenticate(call)
    try:
        raw = await call.body(gw.settings.max_body_bytes)
    except GatewayError as error:
        raise as_rpc(error) from None
    rpc = parse_request(raw)
    agent = _visible(view, principal, call.request.path_params["name"])
    if agent is None:
        raise as_rpc(NotFound(NO_SUCH_AGENT), rpc.rpc_id)
    done = _auditor(gw.remote.audit, agent, principal, rpc, call.request_id, started)
    try:
        try:
            auth = await gw.remote.auth.headers(agent, principal, view)
        except RemoteAuthProblem as problem:
            raise from_auth(problem) from None
        headers = outbound_headers(call.request.headers, call.request_id, auth)
        endpoint = _endpoint(gw.remote.public_url, agent)
        return await relay(gw.remote.client, agent, rpc, headers, endpoint, done)
    except GatewayError as error:
        failure = as_rpc(error, rpc.rpc_id)
        done(outcome(failure), failure.status)
        raise failure from None


async def card(call: Call) -> Response:
    gw, view, principal = await authenticate(call)
    agent = _visible(view, principal, call.request.path_params["name"])
    if agent is None:
        raise NotFound(NO_SUCH_AGENT)
    body = await agent_card(gw.remote, agent, principal, view, _endpoint(gw.remote.public_url, agent))
    return Response(body, media_type="application/json")


def _auditor(audit: RemoteAudit, agent: Agent, principal: Principal, rpc: RpcRequest, request_id: str,
             started: float) -> Done:
    """Records a message's outcome once (other methods are not audited)."""
    if rpc.method not in MESSAGE_METHODS:
        return lambda outcome, status: None
    hashed = args_hash(rpc.params)
    recorded = False

    def done(outcome: str, status: int) -> None:
        nonlocal recorded
        if recorded:
            return
        recorded = True
        audit.record(RemoteCall(kind="agent", target=agent.name, principal=principal.user, method=rpc.method,
                                outcome=outcome, status=status,
                                latency_ms=(time.perf_counter() - started) * 1000, request_id=request_id,
                                args_hash=hashed, email=principal.email,
                                identities=tuple(sorted(principal.identities))))

    return done
