"""The data plane's handlers: authenticate, authorize the model, admit, forward; and the caller's model list.

Each is a `work(call)` behind the one request path (shared/http.py), which has already refused a
non-canonical path and ambiguous framing, and turns every failure into its answer.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..callers import authenticate
from ..errors import GatewayError, InvalidRequest, ModelNotFound
from ..http import plain
from ..limits.rules import Facts
from ..limits.tokens import Reservation
from ..telemetry import identity_of, tracer
from ..upstream.answer import Answer
from ..upstream.outbound import Outbound
from . import operations, references, responses_store
from .query import classic_version

if TYPE_CHECKING:
    from ..config.model import Account, Model
    from ..http import Call
    from ..limits.admission import Limiter, Ticket
    from ..limits.rules import Rules
    from ..runtime import Gateway
    from ..upstream.answer import Forwarded


async def _proxy(call: Call, operation: str, path_model: str | None) -> Answer:
    with tracer.start_as_current_span("authenticate"):
        gw, view, principal = await authenticate(call)
    doc = await call.json(gw.settings.max_body_bytes)
    raw = await call.body(gw.settings.max_body_bytes)
    model_name = path_model
    if model_name is None:
        body_model = doc.get("model")
        if not isinstance(body_model, str) or not body_model:
            raise InvalidRequest("the request body has no 'model'", param="model")
        model_name = body_model
    call.model = model_name
    with tracer.start_as_current_span("authorize", attributes={"gateway.model": model_name}):
        model = view.models.get(model_name)
        if model is None or not view.policy.allows(principal.principals, f"model:{model_name}", "viewer"):
            raise ModelNotFound(model_name)
    model = operations.served(model, view.accounts, operation)
    # ids of stored objects inside the body: the caller's own, and only their account's targets
    model = await references.confine(gw, view, principal, model, doc, raw)
    kept = None
    if operation == "responses":    # a stored response is recorded as its caller's
        kept = responses_store.creation(gw, view, principal, model, doc, call.request_id)
    ticket, rules = None, gw.limiter.rules(view.version, view.config)
    if rules:   # no cost at all without rules or budgets
        ticket, doc, raw = await _admit(gw.limiter, rules, Facts.of(principal, model), model, operation,
                                        doc, raw)
    out = Outbound(method=call.request.method, operation=operation, query=call.request.query_params,
                   headers=call.request.headers, body=raw, doc=doc, stream=doc.get("stream") is True,
                   model=model, principal=principal.user, identity=identity_of(principal.identities),
                   request_id=call.request_id, ticket=ticket)
    answer = await forward(call, gw, view.accounts, out, ticket)
    if kept is not None:
        return await kept.keep(answer, call.account)
    return answer


async def forward(call: Call, gw: Gateway, accounts: Mapping[str, Account], out: Outbound,
                  ticket: Ticket | None) -> Answer:
    """`out` sent to its model's targets: the answer, its ticket given back when nothing was used
    (the usage sink settles it otherwise); a failure is raised."""
    try:
        forwarded = await gw.forwarder.forward(out, accounts, gw.charge)
    except BaseException:
        if ticket is not None:
            ticket.cancel()
        raise
    call.account, call.deployment, call.attempts = forwarded.account, forwarded.deployment, forwarded.attempts
    if ticket is not None:
        _limited(forwarded, ticket)
    if isinstance(forwarded.result, GatewayError):
        raise forwarded.result
    return forwarded.result


NOTHING_RESERVED = Reservation(prompt=0, output=0)


async def _admit(limiter: Limiter, rules: Rules, facts: Facts, model: Model, operation: str,
                 doc: dict[str, Any], raw: bytes) -> tuple[Ticket, dict[str, Any], bytes]:
    """The request's ticket, and the body to forward: with the output cap its reservation injected or
    clamped, so what it reserved bounds what it can consume. An operation whose tokens cannot be
    estimated (images, audio) reserves none: its answer's usage is what it is charged."""
    with tracer.start_as_current_span("admit"):
        if not rules.counts_tokens(facts) or operation in operations.UNESTIMATED:
            return await limiter.admit(rules, facts, NOTHING_RESERVED), doc, raw
        reservation = await limiter.reserve(operation, doc, model, len(raw))
        if reservation.doc is not None:
            doc = dict(reservation.doc)
            raw = json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode()
        return await limiter.admit(rules, facts, reservation), doc, raw


def _limited(forwarded: Forwarded, ticket: Ticket) -> None:
    """A request that used nothing gets its tokens and money back; every answer carries the rate
    limits' headers (in place of the upstream's own)."""
    result = forwarded.result
    if isinstance(result, GatewayError) or result.status >= 300:
        ticket.cancel()
    headers = ticket.headers()
    if not headers:
        return
    if isinstance(result, GatewayError):
        result.headers.update(headers)
        return
    for name in [n for n in result.headers if n.startswith("x-ratelimit-")]:
        del result.headers[name]
    result.headers.update(headers)


@plain
async def chat_completions(call: Call) -> Answer:
    return await _proxy(call, "chat/completions", None)


@plain
async def completions(call: Call) -> Answer:
    return await _proxy(call, "completions", None)


@plain
async def embeddings(call: Call) -> Answer:
    return await _proxy(call, "embeddings", None)


@plain
async def responses(call: Call) -> Answer:
    return await _proxy(call, "responses", None)


@plain
async def images_generations(call: Call) -> Answer:
    return await _proxy(call, "images/generations", None)


@plain
async def audio_speech(call: Call) -> Answer:
    """The answer is audio, relayed to the caller as it arrives."""
    return await _proxy(call, "audio/speech", None)


@plain
async def azure_deployment(call: Call) -> Answer:
    req = call.request
    operation = operations.operation(req.path_params["operation"])
    classic_version(req.query_params)
    return await _proxy(call, operation, req.path_params["model"])


@plain
async def azure_responses(call: Call) -> Answer:
    """Azure's classic shape of the Responses API: the model in the body, an api-version required."""
    classic_version(call.request.query_params)
    return await _proxy(call, "responses", None)


@plain
async def azure_v1(call: Call) -> Answer:
    return await _proxy(call, operations.operation(call.request.path_params["operation"]), None)


@plain
async def list_models(call: Call) -> Answer:
    """OpenAI's model list, of only the models this caller may use (from the in-memory snapshot)."""
    _, view, principal = await authenticate(call)
    data = [{"id": name, "object": "model", "created": 0, "owned_by": "gateway"}
            for name in sorted(view.models)
            if view.policy.allows(principal.principals, f"model:{name}", "viewer")]
    return _json({"object": "list", "data": data})


@plain
async def health(call: Call) -> Answer:
    return _json({"status": "ok"})


def _json(doc: dict[str, Any]) -> Answer:
    """The gateway's own JSON answer, in the bytes Starlette's JSONResponse would write."""
    body = json.dumps(doc, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()
    return Answer(200, {"content-type": "application/json"}, body)
