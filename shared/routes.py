"""The route table both hosts serve: function_app.py (Azure Functions) and server.py (uvicorn).

Every handler is `async def name(req: Request) -> Response` on Starlette's own types, which the
Functions FastAPI extension hands over unchanged.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from opentelemetry.trace import Span, SpanKind, StatusCode
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from . import runtime
from .auth.extract import extract_token
from .auth.identities import Principal
from .config.snapshot import View
from .errors import GatewayError, InvalidRequest, InvalidToken, ModelNotFound, RequestTooLarge, to_response
from .manage.routes import MANAGE_ROUTES
from .telemetry import REFUSALS, REQUESTS, identity_of, tracer
from .upstream.outbound import Outbound
from .upstream.response import to_starlette

log = logging.getLogger("gateway.request")
REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
OPERATION_RE = re.compile(r"^[a-z0-9_.-]+(?:/[a-z0-9_.-]+)*$")

Handler = Callable[[Request], Awaitable[Response]]


@dataclass(frozen=True, slots=True)
class Route:
    route: str                  # Azure Functions route template (no leading slash)
    methods: tuple[str, ...]
    handler: Handler

    @property
    def path(self) -> str:
        """The same template in Starlette's syntax."""
        return "/" + re.sub(r"\{\*(\w+)\}", r"{\1:path}", self.route)


def request_id_of(req: Request) -> str:
    given = req.headers.get("x-request-id", "")
    return given if REQUEST_ID_RE.match(given) else os.urandom(16).hex()  # uuid4().hex's 128 random bits


def check_framing(req: Request) -> None:
    """One unambiguous body framing (NOTES N3): never both Content-Length and Transfer-Encoding, and no
    coding but `chunked` (httptools passes "gzip, chunked" through)."""
    if "transfer-encoding" in req.headers and "content-length" in req.headers:
        raise InvalidRequest("a request may not have both Content-Length and Transfer-Encoding")
    if [v.strip().lower() for v in req.headers.getlist("transfer-encoding")] not in ([], ["chunked"]):
        raise InvalidRequest("Transfer-Encoding other than 'chunked' alone is not accepted")


async def read_body(req: Request, limit: int) -> bytes:
    """The body, refused as soon as it is known to exceed `limit` (before reading when declared)."""
    check_framing(req)
    declared = req.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise InvalidRequest("Content-Length is not a number")
        if int(declared) > limit:
            raise RequestTooLarge(f"request body of {declared} bytes is over the limit of {limit}")
    chunks, size = [], 0
    async for chunk in req.stream():
        size += len(chunk)
        if size > limit:
            raise RequestTooLarge(f"request body is over the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def parse_json_object(raw: bytes) -> dict[str, object]:
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise InvalidRequest("request body is not valid JSON") from None
    if not isinstance(doc, dict):
        raise InvalidRequest("request body must be a JSON object")
    return doc


async def _authenticated(req: Request) -> tuple[runtime.Gateway, View, Principal]:
    gw = await runtime.gateway()
    token = extract_token(req.headers, req.query_params)
    view = await gw.snapshot.current()
    principal = await gw.authenticator.authenticate(token, view.config)
    return gw, view, principal


async def _proxy(req: Request, operation: str, path_model: str | None) -> Response:
    request_id = request_id_of(req)
    started = time.perf_counter()
    principal: Principal | None = None
    model_name: str | None = path_model
    route = req.scope.get("route")
    route_name = getattr(route, "path", None) or req.scope["path"]
    with tracer.start_as_current_span(f"{req.method} {route_name}", kind=SpanKind.SERVER, attributes={
            "http.request.method": req.method, "http.route": route_name,
            "gateway.request_id": request_id}) as span:
        try:
            if not OPERATION_RE.match(operation):
                raise InvalidRequest(f"unknown operation {operation!r}")
            check_framing(req)      # before anything else, as read_body does for every route
            with tracer.start_as_current_span("authenticate"):
                gw, view, principal = await _authenticated(req)
            span.set_attribute("gateway.principal", principal.user)
            raw = await read_body(req, gw.settings.max_body_bytes)
            doc = parse_json_object(raw)
            if model_name is None:
                body_model = doc.get("model")
                if not isinstance(body_model, str) or not body_model:
                    raise InvalidRequest("the request body has no 'model'", param="model")
                model_name = body_model
            span.set_attribute("gateway.model", model_name)
            with tracer.start_as_current_span("authorize", attributes={"gateway.model": model_name}):
                model = view.models.get(model_name)
                if model is None or not view.policy.allows(principal.principals, f"model:{model_name}",
                                                           "viewer"):
                    raise ModelNotFound(model_name)
            out = Outbound(method=req.method, operation=operation, query=req.query_params,
                           headers=req.headers, body=raw, doc=doc, stream=doc.get("stream") is True,
                           model=model, principal=principal.user,
                           identity=identity_of(principal.identities), request_id=request_id)
            response = to_starlette(await gw.forwarder.forward(out, view.accounts, gw.usage.charge))
        except GatewayError as exc:
            response = to_response(exc, request_id)
            _finish(span, req, route_name, request_id, principal, model_name, response.status_code,
                    started, exc)
            return response
        _finish(span, req, route_name, request_id, principal, model_name, response.status_code, started,
                None)
        return response


def _finish(span: Span, req: Request, route: str, request_id: str, principal: Principal | None,
            model: str | None, status: int, started: float, error: GatewayError | None) -> None:
    """The request's span attributes, metrics and log line: principals and reasons, never a token."""
    outcome = "ok" if error is None else ("refused" if status < 500 else "failed")
    span.set_attribute("http.response.status_code", status)
    span.set_attribute("gateway.outcome", outcome)
    identity = identity_of(principal.identities) if principal else "none"
    REQUESTS.add(1, {"http.route": route, "gateway.model": model or "-",
                     "gateway.identity": identity, "http.response.status_code": status})
    fields = {"gateway.request_id": request_id, "gateway.principal": principal.user if principal else "-",
              "gateway.model": model or "-", "http.response.status_code": status,
              "gateway.outcome": outcome}
    if error is not None:
        span.set_attribute("error.code", error.code)
        fields["error.code"] = error.code
        if outcome == "refused":
            reason = error.check if isinstance(error, InvalidToken) else error.code
            REFUSALS.add(1, {"error.code": error.code, "gateway.reason": reason})
        else:
            span.set_status(StatusCode.ERROR, error.code)
    if not log.isEnabledFor(logging.INFO):
        return
    # scope["path"]: req.url builds (and parses) the whole URL on every request
    log.info("%s %s request_id=%s principal=%s model=%r status=%s ms=%.1f%s", req.method, req.scope["path"],
             request_id, fields["gateway.principal"], model, status,
             (time.perf_counter() - started) * 1000,
             f" reason={error.message!r}" if error is not None else "", extra=fields)



async def chat_completions(req: Request) -> Response:
    return await _proxy(req, "chat/completions", None)


async def completions(req: Request) -> Response:
    return await _proxy(req, "completions", None)


async def embeddings(req: Request) -> Response:
    return await _proxy(req, "embeddings", None)


async def responses(req: Request) -> Response:
    return await _proxy(req, "responses", None)


async def azure_deployment(req: Request) -> Response:
    if "api-version" not in req.query_params:
        return to_response(InvalidRequest("missing query parameter api-version", param="api-version"),
                           request_id_of(req))
    return await _proxy(req, req.path_params["operation"], req.path_params["model"])


async def azure_v1(req: Request) -> Response:
    return await _proxy(req, req.path_params["operation"], None)


async def list_models(req: Request) -> Response:
    request_id = request_id_of(req)
    try:
        _, view, principal = await _authenticated(req)
    except GatewayError as exc:
        return to_response(exc, request_id)
    data = [{"id": name, "object": "model", "created": 0, "owned_by": "gateway"}
            for name in sorted(view.models)
            if view.policy.allows(principal.principals, f"model:{name}", "viewer")]
    return JSONResponse({"object": "list", "data": data}, headers={"x-request-id": request_id})


async def health(req: Request) -> Response:
    return JSONResponse({"status": "ok"})


DATA_ROUTES: tuple[Route, ...] = (
    Route("v1/chat/completions", ("POST",), chat_completions),
    Route("v1/completions", ("POST",), completions),
    Route("v1/embeddings", ("POST",), embeddings),
    Route("v1/responses", ("POST",), responses),
    Route("v1/models", ("GET",), list_models),
    Route("openai/deployments/{model}/{*operation}", ("POST",), azure_deployment),
    Route("openai/v1/{*operation}", ("POST",), azure_v1),
    Route("health", ("GET",), health),
)
ROUTES: tuple[Route, ...] = (*DATA_ROUTES, *(Route(*r) for r in MANAGE_ROUTES))  # /manage: shared/manage
