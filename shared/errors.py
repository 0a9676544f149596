"""The error family: every failure a caller can see is one of these values.

    GatewayError                 status  error.code
    ├── InvalidRequest             400   invalid_request
    ├── MissingToken               401   missing_token
    ├── InvalidToken               401   invalid_token     (reason -> error_description)
    ├── PermissionDenied           403   permission_denied
    ├── NotFound                   404   not_found
    │   └── ModelNotFound          404   model_not_found
    ├── MethodNotAllowed           405   method_not_allowed (Allow)
    ├── RequestTimeout             408   request_timeout   (the local host: a slow request head or body)
    ├── Conflict                   409   conflict
    ├── PreconditionFailed         412   precondition_failed
    ├── RequestTooLarge            413   request_too_large
    ├── RateLimited                429   rate_limited      (Retry-After)
    ├── RateLimitExceeded          429   rate_limit_exceeded (Retry-After; a gateway rate limit)
    ├── InsufficientQuota          429   insufficient_quota (x-should-retry: false; a gateway budget)
    ├── HeadersTooLarge            431   request_header_fields_too_large (the local host)
    ├── InternalError              500   internal_error    (a defect; the log has the traceback)
    ├── UpstreamError              502   upstream_error
    ├── Unavailable                503   unavailable
    ├── UpstreamTimeout            504   upstream_timeout
    └── JsonRpcError               the status and error.code of the failure it stands for, with a
                                   JSON-RPC error body (MCP servers and agents speak JSON-RPC)

`to_response` is the one place they become HTTP responses (the local host's connection guard, which
answers before any app runs, writes the same body as raw bytes: `server_protocol.error_bytes`).
"""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from starlette.responses import Response


class GatewayError(Exception):
    """`message` is for the log, the CLI and explain; `public` (by default the same) is what an HTTP
    caller reads: where the message names configuration a caller must not learn (storage hosts,
    issuers, audiences), `public` says the same in general words."""

    status: ClassVar[int] = 500
    code: ClassVar[str] = "internal_error"
    type: ClassVar[str] = "server_error"

    def __init__(self, message: str, *, param: str | None = None,
                 headers: dict[str, str] | None = None, public: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.public = message if public is None else public
        self.param = param
        self.headers = dict(headers or {})

    def body(self) -> dict[str, object]:
        return {"error": {"message": self.public, "type": self.type, "code": self.code,
                          "param": self.param}}


class InvalidRequest(GatewayError):
    status, code, type = 400, "invalid_request", "invalid_request_error"


class MissingToken(GatewayError):
    status, code, type = 401, "missing_token", "authentication_error"

    def __init__(self, message: str = "no bearer token: send 'Authorization: Bearer <jwt>' "
                 "or 'api-key: <jwt>'") -> None:
        super().__init__(message, headers={"WWW-Authenticate": "Bearer"})


def _quote(value: str) -> str:
    """RFC 6750 quoted-string content: printable ASCII only, quotes and backslashes dropped."""
    return "".join(c if 0x20 <= ord(c) < 0x7F and c not in '"\\' else "?" for c in value)


class InvalidToken(GatewayError):
    """`reason` names the failed check with the configuration it was checked against (for the log and
    explain); `public` names it without configuration (for the caller, and error_description)."""

    status, code, type = 401, "invalid_token", "authentication_error"

    def __init__(self, reason: str, check: str = "token", public: str | None = None) -> None:
        description = reason if public is None else public
        super().__init__(f"invalid token: {reason}", public=f"invalid token: {description}", headers={
            "WWW-Authenticate": f'Bearer error="invalid_token", error_description="{_quote(description)}"'
        })
        self.reason = reason
        self.check = check      # which check failed (issuer, audience, signature, ...): a metric label


class PermissionDenied(GatewayError):
    status, code, type = 403, "permission_denied", "permission_error"


class NotFound(GatewayError):
    status, code, type = 404, "not_found", "invalid_request_error"


class ModelNotFound(NotFound):
    code = "model_not_found"

    def __init__(self, model: str) -> None:
        super().__init__(f"model {model!r} does not exist or you do not have access to it",
                         param="model")


class MethodNotAllowed(GatewayError):
    status, code, type = 405, "method_not_allowed", "invalid_request_error"

    def __init__(self, message: str, allow: list[str]) -> None:
        super().__init__(message, headers={"Allow": ", ".join(allow)})


class RequestTimeout(GatewayError):
    status, code, type = 408, "request_timeout", "invalid_request_error"


class Conflict(GatewayError):
    status, code, type = 409, "conflict", "invalid_request_error"


class PreconditionFailed(GatewayError):
    status, code, type = 412, "precondition_failed", "invalid_request_error"


class RequestTooLarge(GatewayError):
    status, code, type = 413, "request_too_large", "invalid_request_error"


class HeadersTooLarge(GatewayError):
    status, code, type = 431, "request_header_fields_too_large", "invalid_request_error"


class RateLimited(GatewayError):
    status, code, type = 429, "rate_limited", "rate_limit_error"

    def __init__(self, message: str, retry_after: int | None = None) -> None:
        super().__init__(message, headers={"Retry-After": str(retry_after)} if retry_after else None)


def _wait_headers(retry_after: float) -> dict[str, str]:
    """Retry-After in whole seconds (rounded up), and retry-after-ms, which the openai SDK prefers."""
    return {"Retry-After": str(max(1, math.ceil(retry_after))),
            "retry-after-ms": str(max(1, math.ceil(retry_after * 1000)))}


class RateLimitExceeded(GatewayError):
    """A gateway rate limit refused the request until its window ends; `final` when the request can
    never fit the window (it asks for more tokens than the whole window allows)."""

    status, code, type = 429, "rate_limit_exceeded", "rate_limit_error"

    def __init__(self, message: str, retry_after: float, *, final: bool = False,
                 headers: dict[str, str] | None = None) -> None:
        more = {"x-should-retry": "false"} if final else _wait_headers(retry_after)
        super().__init__(message, headers={**(headers or {}), **more})


class InsufficientQuota(GatewayError):
    """A gateway budget is spent until its window ends: retrying sooner cannot help, so the openai SDK
    is told not to."""

    status, code, type = 429, "insufficient_quota", "insufficient_quota"

    def __init__(self, message: str, retry_after: float, headers: dict[str, str] | None = None) -> None:
        super().__init__(message, headers={**(headers or {}), **_wait_headers(retry_after),
                                           "x-should-retry": "false"})


class InternalError(GatewayError):
    """A defect in the gateway: the caller gets the request id, the log gets the traceback."""


class UpstreamError(GatewayError):
    status, code, type = 502, "upstream_error", "server_error"


class Unavailable(GatewayError):
    status, code, type = 503, "unavailable", "server_error"


# What a caller (perhaps not yet authenticated) reads when the gateway itself cannot serve; the log has
# the storage host, the setting or the exception.
STORAGE_UNAVAILABLE = "the gateway cannot read its configuration; try again later (details in its log)"
SETTINGS_INVALID = "the gateway is misconfigured (its log names the setting to fix)"


class UpstreamTimeout(GatewayError):
    status, code, type = 504, "upstream_timeout", "server_error"


class JsonRpcError(GatewayError):
    """A failure on a route whose clients speak JSON-RPC (MCP servers, agents): they parse
    `{"jsonrpc": "2.0", "id": ..., "error": {"code", "message", "data"}}`, not OpenAI's shape. The HTTP
    status, headers and `code` are those of the failure it stands for, so a refused token is still a 401
    with its WWW-Authenticate and the access log and metrics read as for any other route; `code` is also
    in the error object, as `data.gateway_error`, for a client that wants the gateway's own reason."""

    def __init__(self, message: str, *, rpc_code: int, status: int, code: str, rpc_id: object = None,
                 data: dict[str, object] | None = None, headers: dict[str, str] | None = None,
                 public: str | None = None) -> None:
        super().__init__(message, headers=headers, public=public)
        self.status = status    # type: ignore[misc]  # per instance: it stands for another member
        self.code = code        # type: ignore[misc]
        self.rpc_code = rpc_code
        self.rpc_id = rpc_id
        self.data = dict(data or {})

    @classmethod
    def of(cls, error: GatewayError, rpc_code: int, rpc_id: object = None,
           data: dict[str, object] | None = None) -> JsonRpcError:
        """`error` in JSON-RPC's shape, with the same status, headers and caller-facing message."""
        if isinstance(error, JsonRpcError):
            return error
        return cls(error.message, rpc_code=rpc_code, status=error.status, code=error.code, rpc_id=rpc_id,
                   data=data, headers=error.headers, public=error.public)

    def body(self) -> dict[str, object]:
        error = {"code": self.rpc_code, "message": self.public,
                 "data": {"gateway_error": self.code, **self.data}}
        return {"jsonrpc": "2.0", "id": self.rpc_id, "error": error}


def to_response(error: GatewayError, request_id: str | None = None) -> Response:
    from starlette.responses import Response

    headers = dict(error.headers)
    if request_id:
        headers["x-request-id"] = request_id
    return Response(json.dumps(error.body()), status_code=error.status, headers=headers,
                    media_type="application/json")
