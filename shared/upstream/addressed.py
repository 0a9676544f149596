"""Sends a request about one stored object (read, cancel, delete, list its items) to the account that
holds it.

An object lives in one account, so there is no failover: the request goes to the account its
ownership record names, with that account's credential, over the process's one session, and the
answer is read whole and relayed with the same response-header allowlist as every other answer.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from opentelemetry.trace import SpanKind, StatusCode

from ..config.model import Account
from ..errors import UpstreamError, UpstreamTimeout
from ..telemetry import UPSTREAM_DURATION, tracer
from .address import object_url
from .answer import Answer, passed_on
from .attempt import Transport, read_whole
from .failover import refusal
from .outbound import passed_headers


@dataclass(frozen=True, slots=True)
class ObjectRequest:
    method: str
    collection: str                     # a gateway constant: "responses", "files"
    object_id: str                      # checked against its kind's pattern
    action: str | None                  # a gateway constant ("cancel", "input_items") or None
    query: Sequence[tuple[str, str]]    # checked against an allowlist
    headers: Mapping[str, str]          # the caller's, as received: only the allowlisted go on
    request_id: str
    body: bytes = b""


async def send(transport: Transport, account: Account, req: ObjectRequest) -> Answer:
    """The account's answer; a redirect, a refused credential, 429 or 5xx is the failure raised."""
    import aiohttp

    labels = {"gateway.account": account.name}
    headers = {**passed_headers(req.headers, req.request_id), **await transport.credential_headers(account)}
    url = object_url(account, req.collection, req.object_id, req.action, req.query)
    sent = time.perf_counter()
    with tracer.start_as_current_span("upstream", kind=SpanKind.CLIENT, attributes=labels) as span:
        try:
            resp = await transport.session().request(req.method, url, data=req.body or None, headers=headers,
                                                     allow_redirects=False)
        except TimeoutError:
            span.set_status(StatusCode.ERROR, "timeout")
            raise UpstreamTimeout(f"account {account.name} did not answer in time") from None
        except aiohttp.ClientError as exc:
            span.set_status(StatusCode.ERROR, type(exc).__name__)
            raise UpstreamError(f"could not reach account {account.name} ({type(exc).__name__})") from None
        span.set_attribute("http.response.status_code", resp.status)
        UPSTREAM_DURATION.record(time.perf_counter() - sent,
                                 {**labels, "http.response.status_code": resp.status})
    refused = refusal(account, resp.status, resp.headers)
    if refused is not None:
        resp.release()
        raise refused
    body = await read_whole(resp, account)
    return Answer(resp.status, passed_on(resp.headers, req.request_id), body)
