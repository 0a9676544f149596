"""Requests to one named account for the objects it holds (files, stored responses): no model, no
target, no failover, since an object lives in exactly one account.

The URL is built from the account's endpoint and path segments the caller built from constants and
ids it has already validated; each segment is percent-quoted anyway. The surface follows the account's
style: `v1` accounts get `/openai/v1/<path>` (no api-version), `deployments` accounts the classic
`/openai/<path>?api-version=<the account's>`; `models` accounts (the Model Inference API) hold no
objects. The credential, the session, the request header allowlist and the response header allowlist
are the forwarder's own.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from urllib.parse import quote, urlencode

from ..config.model import Account
from ..errors import InvalidRequest
from .answer import Answer, passed_on
from .attempt import Transport, body_chunks, read_body
from .failover import refusal
from .outbound import REQUEST_HEADERS

_EMPTY: Mapping[str, str] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class AccountRequest:
    method: str
    path: tuple[str, ...]               # segments under the OpenAI surface: ("files", <id>, "content")
    request_id: str
    query: Mapping[str, str] | Sequence[tuple[str, str]] = _EMPTY   # allowlisted and validated by the caller
    headers: Mapping[str, str] = _EMPTY  # the caller's; only the forwarder's allowlist goes upstream
    body: bytes | AsyncIterable[bytes] | None = None
    content_type: str | None = None     # set by the gateway when it built the body itself
    stream: bool = False                # relay a successful answer's body as it arrives
    extra: dict[str, str] = field(default_factory=dict)   # gateway-made headers (after the allowlist)
    v1: bool = False                    # always the v1 surface: where the gateway creates responses


def holds_objects(account: Account) -> bool:
    return account.api_style != "models"


def account_url(account: Account, path: tuple[str, ...], query: Mapping[str, str] | Sequence[tuple[str, str]],
                *, v1: bool = False) -> str:
    if not holds_objects(account):
        raise InvalidRequest(f"account {account.name} serves the Model Inference API, which stores no "
                             "files or responses")
    segments = "/".join(quote(segment, safe="") for segment in path)
    pairs = list(query.items()) if isinstance(query, Mapping) else list(query)
    if account.api_style == "v1" or v1:
        return f"{account.endpoint}/openai/v1/{segments}" + (f"?{urlencode(pairs)}" if pairs else "")
    pairs = [(k, v) for k, v in pairs if k != "api-version"] + [("api-version", account.api_version)]
    return f"{account.endpoint}/openai/{segments}?{urlencode(pairs)}"


def _headers(req: AccountRequest) -> dict[str, str]:
    headers = {k: v for k, v in req.headers.items() if k.lower() in REQUEST_HEADERS}
    if req.content_type is not None:
        headers = {k: v for k, v in headers.items() if k.lower() != "content-type"}
        headers["Content-Type"] = req.content_type
    headers.update({"x-request-id": req.request_id, "x-ms-client-request-id": req.request_id,
                    "accept-encoding": "identity", **req.extra})
    return headers


async def send(transport: Transport, account: Account, req: AccountRequest) -> Answer:
    """The account's answer (its status and body are the caller's to have), or the failure a redirect,
    a refused credential, a 429 or a 5xx means (the same judgement as for model requests)."""
    url = account_url(account, req.path, req.query, v1=req.v1)
    resp = await transport.account_request(account, req.method, url, _headers(req), req.body)
    refused = refusal(account, resp.status, resp.headers)
    if refused is not None:
        resp.release()
        raise refused
    headers = passed_on(resp.headers, req.request_id)
    if req.stream and 200 <= resp.status < 300:
        return Answer(resp.status, headers, chunks=body_chunks(resp, account.name, req.request_id),
                      close=resp.close)
    return Answer(resp.status, headers, await read_body(resp, account))
