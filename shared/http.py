"""The one request path: every route of every plane is a `work(call)` function wrapped by `endpoint`.

The wrapper does, once and in this order, what no handler repeats: take the caller's well-formed
`x-request-id` or make one; refuse a path that is not canonical and a body framing that is ambiguous
(both before any handler logic); hand the handler a `Call` whose body is read at most once, under a
size cap, and parsed at most once as strict JSON; open the request's server span; turn a failure of
the error family (shared/errors.py) into its HTTP answer and any other exception into a logged 500
`internal_error` carrying the request id; put `x-request-id` on every response; and write the one log
line and metrics of the request. That logic is `serve`, written once; two thin adapters hand it a
request: `endpoint` a Starlette Request (the Functions FastAPI extension hands over Starlette's own,
and the local host's less used routes), shared/asgi.py the raw ASGI scope of the local host's data
plane, where building Request and Response objects was a measurable share of a proxied request. A
handler marked `plain` reads only what both hosts' requests give (`method`, `headers`, `query_params`,
`path_params`, `scope`, the body through the `Call`) and may return an `Answer`, a plain value each
adapter sends its own way, so the local host may serve it without Starlette.

No `from __future__ import annotations` here: the Functions worker reads the wrapper's annotations
to bind the request, so they must be real classes.
"""

import logging
import os
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from opentelemetry.trace import SpanKind, StatusCode
from starlette.datastructures import Headers
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from . import strict_json
from .errors import (
    GatewayError,
    InternalError,
    InvalidRequest,
    InvalidToken,
    MethodNotAllowed,
    NotFound,
    RequestTooLarge,
    to_response,
)
from .telemetry import REFUSALS, REQUESTS, identity_of, tracer
from .upstream.answer import Answer
from .upstream.response import to_starlette

log = logging.getLogger("gateway.http")

REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._-]{1,128}$")
# Anything a URL library could later decode or normalise into a different path than the one routed:
# control characters, non-ASCII bytes, backslashes, and encoded slash, backslash, dot, percent or
# control characters.
_UNSAFE_PATH = re.compile(rb"[\x00-\x1f\x7f-\xff\\]|%(?:2[eEfF5]|5[cC]|[01][0-9a-fA-F]|7[fF])")
# The paths that name a page of relative links, so must end in "/" (the operator console's).
DIRECTORY_PAGES = frozenset({b"/console/"})
ALL_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")

Handler = Callable[[Request], Awaitable[Response]]
Reply = Response | Answer
"""What a handler returns: a Starlette Response, or an `Answer` (status, headers, body or chunks)."""
Work = Callable[["Call"], Awaitable[Reply]]


def path_problem(raw: bytes) -> str | None:
    """Why a raw request path is refused, or None. Never says more than the kind of problem."""
    if not raw.startswith(b"/"):
        return "the request path must start with '/'"
    bad = _UNSAFE_PATH.search(raw)
    if bad is not None:
        found = bad.group()
        if found.startswith(b"%"):
            return "the request path holds an encoded slash, backslash, dot, percent or control character"
        if found == b"\\":
            return "the request path holds a backslash"
        return "the request path holds a control or non-ASCII character"
    if raw == b"/" or raw in DIRECTORY_PAGES:
        return None
    if b"//" in raw or raw.endswith(b"/"):
        return "the request path holds an empty segment"
    padded = raw + b"/"
    if b"/./" in padded or b"/../" in padded:
        return "the request path holds a dot segment"
    return None


def check_framing(headers: Headers) -> None:
    """One unambiguous body framing: never both Content-Length and Transfer-Encoding, and no coding
    but `chunked` (httptools passes "gzip, chunked" through)."""
    if "transfer-encoding" in headers:
        if "content-length" in headers:
            raise InvalidRequest("a request may not have both Content-Length and Transfer-Encoding")
        if [v.strip().lower() for v in headers.getlist("transfer-encoding")] != ["chunked"]:
            raise InvalidRequest("Transfer-Encoding other than 'chunked' alone is not accepted")


class Call:
    """One request as its handler sees it: the request, its id, and what the handler learns (the
    caller's principal, the model, and the account and deployment that answered after how many
    attempts) for the log line and the span."""

    __slots__ = ("_body", "_json", "account", "attempts", "deployment", "model", "principal", "request",
                 "request_id", "route")

    def __init__(self, request: Request, request_id: str, route: str) -> None:
        self.request = request
        self.request_id = request_id
        self.route = route
        self.principal: Any = None      # shared.auth.identities.Principal, once authenticated
        self.model: str | None = None
        self.account: str | None = None     # the upstream account that answered
        self.deployment: str | None = None  # its deployment: the log and span only, never a response
        self.attempts = 0                   # targets tried
        self._body: bytes | None = None
        self._json: dict[str, Any] | None = None
        request.scope["gateway.call"] = self

    @staticmethod
    def of(request: Request) -> "Call":
        """The Call of a request already inside `endpoint` (for handlers written against Request)."""
        call: Call = request.scope["gateway.call"]
        return call

    async def body(self, limit: int) -> bytes:
        """The body, read once; refused as soon as it is known to exceed `limit` (before reading it
        when the declared length says so)."""
        if self._body is None:
            self._body = await _read_body(self.request, limit)
        return self._body

    async def json(self, limit: int) -> dict[str, Any]:
        """The body as a strict JSON object, parsed once."""
        if self._json is None:
            self._json = parse_json_object(await self.body(limit))
        return self._json


async def _read_body(req: Request, limit: int) -> bytes:
    declared = req.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise InvalidRequest("Content-Length is not a number")
        if int(declared) > limit:
            raise RequestTooLarge(f"request body of {declared} bytes is over the limit of {limit}")
    chunks, size = [], 0
    try:
        async for chunk in req.stream():
            size += len(chunk)
            if size > limit:
                raise RequestTooLarge(f"request body is over the limit of {limit} bytes")
            chunks.append(chunk)
    except ClientDisconnect:
        # The caller left, or stalled past the body timeout (the local host has answered 408 already).
        raise InvalidRequest("the request body did not arrive: the client left or stalled") from None
    return b"".join(chunks)


def parse_json_object(raw: bytes) -> dict[str, Any]:
    try:
        doc = strict_json.loads(raw, max_depth=strict_json.BODY_DEPTH)
    except strict_json.StrictJSONError as exc:
        raise InvalidRequest(f"request body is not strict JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise InvalidRequest("request body must be a JSON object")
    return doc


def request_id_of(headers: Headers) -> str:
    given = headers.get("x-request-id", "")
    return given if REQUEST_ID_RE.match(given) else os.urandom(16).hex()


def span_route(route: str) -> str:
    """A route template as the span names it: "/v1/chat/completions", "/openai/deployments/{model}/..."."""
    return "/" + route.replace("{*", "{")


def raw_path_of(scope: dict[str, Any]) -> bytes:
    return scope.get("raw_path") or scope["path"].encode()


async def serve(call: Call, name: str, work: Work, started: float) -> Reply:
    """The wrapper's logic for both hosts: `work` run for `call` after the path and framing checks,
    every failure turned into its answer, `x-request-id` on the answer, the span, metrics and log."""
    req = call.request
    method = req.method
    with tracer.start_as_current_span(f"{method} {call.route}", kind=SpanKind.SERVER,
                                      attributes={"http.request.method": method,
                                                  "http.route": call.route,
                                                  "gateway.request_id": call.request_id}) as span:
        error: GatewayError | None = None
        try:
            problem = path_problem(raw_path_of(req.scope))
            if problem is not None:
                raise InvalidRequest(problem)
            check_framing(req.headers)
            reply = await work(call)
        except GatewayError as exc:
            error = exc
        except Exception:
            log.exception("request %s: unexpected error in %s", call.request_id, name)
            error = InternalError(f"internal error: the gateway failed on this request (request id "
                                  f"{call.request_id}); its log has the details")
        if error is not None:
            reply = to_response(error, call.request_id)
        if isinstance(reply, Answer):
            reply.headers.setdefault("x-request-id", call.request_id)
            status = reply.status
        else:
            _with_request_id(reply, call.request_id)
            status = reply.status_code
        _finish(span, call, method, status, started, error)
        return reply


def endpoint(name: str, work: Work, route: str) -> Handler:
    """`work` behind the one request path as a Starlette handler named `name` (the Functions function
    name): the adapter of the Functions host and of the local host's Starlette routes."""
    span_route_ = span_route(route)

    async def handler(req: Request) -> Response:
        started = time.perf_counter()
        call = Call(req, request_id_of(req.headers), span_route_)
        reply = await serve(call, name, work, started)
        return to_starlette(reply) if isinstance(reply, Answer) else reply

    handler.__name__ = handler.__qualname__ = name
    return handler


def _with_request_id(response: Response, request_id: str) -> None:
    """Adds `x-request-id` unless the handler's response has it (the forwarder's do), without building
    Starlette's MutableHeaders view for it."""
    raw = response.raw_headers
    if not any(name == b"x-request-id" for name, _ in raw):
        raw.append((b"x-request-id", request_id.encode("latin-1")))


def _finish(span: Any, call: Call, method: str, status: int, started: float,
            error: GatewayError | None) -> None:
    """The request's span attributes, metrics and log line: principals and reasons, never a token."""
    principal = call.principal
    outcome = "ok" if error is None else ("refused" if status < 500 else "failed")
    span.set_attribute("http.response.status_code", status)
    span.set_attribute("gateway.outcome", outcome)
    identity = identity_of(principal.identities) if principal is not None else "none"
    user = principal.user if principal is not None else "-"
    REQUESTS.add(1, {"http.route": call.route, "gateway.model": call.model or "-",
                     "gateway.identity": identity, "http.response.status_code": status})
    fields = {"gateway.request_id": call.request_id, "gateway.principal": user,
              "gateway.model": call.model or "-", "gateway.account": call.account or "-",
              "gateway.deployment": call.deployment or "-", "gateway.attempts": call.attempts,
              "http.response.status_code": status, "gateway.outcome": outcome}
    if principal is not None:
        span.set_attribute("gateway.principal", user)
    if call.model is not None:
        span.set_attribute("gateway.model", call.model)
    if call.attempts:
        span.set_attribute("gateway.attempts", call.attempts)
    if call.account is not None:
        span.set_attribute("gateway.account", call.account)
        span.set_attribute("gateway.deployment", call.deployment or "-")
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
    log.info("%s %s request_id=%s principal=%s model=%r account=%s deployment=%s attempts=%d status=%s "
             "ms=%.1f%s", method, call.request.scope["path"], call.request_id, user, call.model,
             call.account or "-", call.deployment or "-", call.attempts, status,
             (time.perf_counter() - started) * 1000,
             f" reason={error.message!r}" if error is not None else "", extra=fields)


@dataclass(frozen=True, slots=True)
class Route:
    route: str                  # Azure Functions route template (no leading slash)
    methods: tuple[str, ...]
    handler: Handler            # the Starlette adapter of `work` (Functions, and the local host's default)
    name: str = ""
    work: Work | None = None    # set when the local host may serve it as raw ASGI (`plain` work)

    @property
    def path(self) -> str:
        """The same template in Starlette's syntax."""
        return "/" + re.sub(r"\{\*(\w+)\}", r"{\1:path}", self.route)


def route(template: str, methods: tuple[str, ...], name: str, work: Work) -> Route:
    return Route(template, methods, endpoint(name, work, template), name,
                 work if getattr(work, "plain", False) else None)


def plain(work: Work) -> Work:
    """Marks `work` as reading only what every host's request gives (see the module's docstring), so
    the local host serves its route as raw ASGI."""
    work.plain = True  # type: ignore[attr-defined]
    return work


def fallback(routes: tuple[Route, ...]) -> Route:
    """The last route of a table: 405 with `Allow` for a known path and another method, else 404."""
    from starlette.routing import compile_path

    matchers = [(compile_path(r.path)[0], r.methods) for r in routes]

    async def work(call: Call) -> Reply:
        path = call.request.scope["path"]
        allowed = sorted({m for regex, methods in matchers if regex.match(path) for m in methods})
        if allowed:
            raise MethodNotAllowed(f"method {call.request.method} is not allowed here; use "
                                   f"{', '.join(allowed)}", allow=allowed)
        raise NotFound("no such route: see the README for the gateway's routes")

    return route("{*path}", ALL_METHODS, "not_found", work)
