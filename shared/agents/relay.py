"""One JSON-RPC request relayed to an agent, its answer relayed back.

Methods pass through, of either protocol (1.0 `SendMessage`, `GetTask`, ...; 0.3 `message/send`,
`tasks/get`, ...): the gateway does not need to know them to relay them. What crosses is allowlisted
both ways. Toward the agent: the body as the caller sent it (after it was checked to be strict JSON),
`Accept`, `A2A-Version` and the extension headers, the request id, and the gateway's own
authentication; never the caller's Authorization, api-key or Cookie. Toward the caller: the answer's
status and body, and only `Content-Type`, `A2A-Version`, the extension headers and `Retry-After`.

An answer of `text/event-stream` is relayed as it arrives (stream.py); any other is read whole (it is
one JSON-RPC response), under a cap, and must be strict JSON. The result of an extended-card method is
a card, so it is rewritten like the public one.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from starlette.responses import Response

from .. import strict_json
from ..errors import UpstreamError
from ..remote.client import RemoteFailure, RemoteRequest
from ..upstream.response import RelayedResponse
from .failures import from_remote, from_status
from .rewrite import rewrite_card
from .rpc import RpcRequest
from .stream import SseRelay

if TYPE_CHECKING:
    from starlette.datastructures import Headers

    from ..config.model import Agent
    from ..remote.client import RemoteClient, RemoteReply

FORWARDED = ("Accept", "A2A-Version", "A2A-Extensions", "X-A2A-Extensions")
RELAYED = ("Content-Type", "A2A-Version", "A2A-Extensions", "X-A2A-Extensions", "Retry-After")
ANSWER_LIMIT = 32 * 1024 * 1024
CARD_METHODS = frozenset({"GetExtendedAgentCard", "agent/getAuthenticatedExtendedCard"})

Done = Callable[[str, int], None]
"""Told the audit's outcome and the caller's status once the answer is complete."""


def outbound_headers(caller: Headers, request_id: str, auth: Mapping[str, str]) -> dict[str, str]:
    """The allowlisted caller headers, the request id, and the gateway's authentication (last, so
    nothing of the caller's can stand in for it)."""
    out = {name: ", ".join(caller.getlist(name)) for name in FORWARDED if name in caller}
    out.setdefault("Accept", "application/json, text/event-stream")
    out["Content-Type"] = "application/json"
    out["x-request-id"] = request_id
    out.update(auth)
    return out


async def relay(client: RemoteClient, agent: Agent, rpc: RpcRequest, headers: Mapping[str, str],
                endpoint: str, done: Done) -> Response:
    """The agent's answer to `rpc` as the caller's response; failures as the gateway's errors."""
    assert agent.url is not None
    try:
        reply = await client.open(RemoteRequest("POST", agent.url, headers, rpc.raw, agent.timeout_s,
                                                agent.allow_private_network))
    except RemoteFailure as failure:
        raise from_remote(failure) from None
    if not 200 <= reply.status < 300:
        reply.release()
        raise from_status(reply.status, reply.headers.get("Retry-After"))
    if reply.content_type == "text/event-stream":
        stream = SseRelay(reply, rpc.rpc_id, done)
        return RelayedResponse(stream.chunks(), stream.close, status_code=reply.status,
                               headers=_relayed(reply))
    return await _whole(reply, rpc, endpoint, done)


async def _whole(reply: RemoteReply, rpc: RpcRequest, endpoint: str, done: Done) -> Response:
    try:
        body = await reply.read(ANSWER_LIMIT)
    except RemoteFailure as failure:
        raise from_remote(failure) from None
    if not body and reply.status in (202, 204):      # a notification's answer
        done("ok", reply.status)
        return Response(status_code=reply.status, headers=_relayed(reply))
    try:
        doc = strict_json.loads(body, max_depth=strict_json.BODY_DEPTH)
    except strict_json.StrictJSONError:
        doc = None
    if not isinstance(doc, dict) or ("result" not in doc and "error" not in doc):
        raise UpstreamError("the agent's answer is not a JSON-RPC response")
    if rpc.method in CARD_METHODS and isinstance(doc.get("result"), dict):
        doc["result"] = rewrite_card(doc["result"], endpoint)
        body = json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode()
    headers = _relayed(reply)
    headers["Content-Type"] = "application/json"
    done("error" if "error" in doc else "ok", reply.status)
    return Response(body, status_code=reply.status, headers=headers)


def _relayed(reply: RemoteReply) -> dict[str, str]:
    return {name: reply.headers[name] for name in RELAYED if name in reply.headers}
