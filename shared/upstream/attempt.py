"""One attempt against one target: its credential, the POST, and what the answer becomes.

An attempt either returns the `Answer` the caller gets or raises the failure (a GatewayError) that
`failover` judges; which failures there are is decided in `failover.refusal`, not here. A JSON or error
answer is read whole before anything is returned, so a failure while reading it is a failure of the
attempt too; a successful answer that is neither JSON nor an event stream (generated speech) is relayed
as it arrives, since it may be large and its listener wants it early, and it carries no usage (speech
is counted by its input, `media_usage`). Owns
the process's one aiohttp session, and the background drains of streams whose callers left (see
`relay`), which shutdown waits for.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING

from opentelemetry.trace import SpanKind, StatusCode

from ..config.model import Account, Target
from ..errors import UpstreamError, UpstreamTimeout
from ..telemetry import UPSTREAM_DURATION, tracer
from .address import check_endpoint, upstream_body, upstream_headers, upstream_url
from .answer import Answer, hide_deployment, passed_on
from .credentials import Credentials
from .failover import refusal
from .media_usage import usage_of_answer, usage_of_request
from .outbound import Outbound, UsageSink, charge
from .relay import DRAIN_SECONDS, Relay
from .usage_scan import AmbiguousUsage

if TYPE_CHECKING:
    import aiohttp

log = logging.getLogger("gateway.upstream.attempt")

KEEPALIVE_SECONDS = 60.0
"""How long an idle upstream connection is kept for the next request (aiohttp's default is 15 s; Azure's
front ends keep idle connections for minutes)."""


class Transport:
    def __init__(self, *, credentials: Credentials, timeout_seconds: float, allow_http_loopback: bool,
                 connect_timeout_seconds: float) -> None:
        self._credentials = credentials
        self._allow_http_loopback = allow_http_loopback
        self._timeout = timeout_seconds
        self._connect_timeout = connect_timeout_seconds
        self._session: aiohttp.ClientSession | None = None
        self._drains: set[asyncio.Task[None]] = set()

    def _client(self) -> aiohttp.ClientSession:
        """One session per process, made inside the running loop on first use. Its pool keeps
        connections to every account open between requests (a new TLS connection costs
        milliseconds), with no cap of its own (the local host caps callers, the Functions host its
        concurrency) and host names resolved at most every five minutes. The cookie jar is a dummy:
        an upstream cookie must never be stored, let alone sent on another caller's request (and
        filtering a jar was work on every request)."""
        if self._session is None or self._session.closed:
            import aiohttp

            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0, limit_per_host=0, ttl_dns_cache=300,
                                               keepalive_timeout=KEEPALIVE_SECONDS,
                                               enable_cleanup_closed=True),
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=self._connect_timeout,
                                              sock_read=self._timeout),
                cookie_jar=aiohttp.DummyCookieJar(), auto_decompress=False,
                skip_auto_headers=("User-Agent",))
        return self._session

    async def credential_headers(self, account: Account) -> dict[str, str]:
        """What every request to `account` carries: its style's headers and its credential, once its
        endpoint is known to be allowed."""
        check_endpoint(account, self._allow_http_loopback)
        credential = self._credentials.for_account(account)
        return {**upstream_headers(account), **await credential.auth_headers()}

    async def attempt(self, out: Outbound, account: Account, target: Target, headers: dict[str, str],
                      injected: bool, sink: UsageSink | None) -> Answer:
        labels = {"gateway.model": out.model.name, "gateway.account": account.name}
        with tracer.start_as_current_span("credential", attributes=labels):
            headers = {**headers, **await self.credential_headers(account)}
        sent = time.perf_counter()
        resp = await self._send(out, account, target, headers, labels, sent)
        refused = refusal(account, resp.status, resp.headers)
        if refused is not None:
            resp.release()
            raise refused
        if not 200 <= resp.status < 300:
            sink = None
        if resp.headers.get("Content-Type", "").startswith("text/event-stream"):
            relay = Relay(resp, out, account.name, sink, injected,
                          tracer.start_span("stream", attributes=labels), labels, sent, self._drains)
            return Answer(resp.status, passed_on(resp.headers, out.request_id), chunks=relay.chunks(),
                          close=relay.close)
        if 200 <= resp.status < 300 and not _is_json(resp.headers.get("Content-Type", "")):
            if sink is not None:
                charge(sink, out, usage_of_request(out))
            return Answer(resp.status, passed_on(resp.headers, out.request_id),
                          chunks=body_chunks(resp, account.name, out.request_id), close=resp.close)
        body = await read_body(resp, account)
        if sink is not None:
            try:
                usage = usage_of_answer(out.operation, body)
            except AmbiguousUsage:
                raise UpstreamError(f"account {account.name} answered with its usage given more than "
                                    "once") from None
            charge(sink, out, usage)
        elif resp.status >= 300:
            body = hide_deployment(body, target.deployment, out.model.name)
        return Answer(resp.status, passed_on(resp.headers, out.request_id), body)

    async def _send(self, out: Outbound, account: Account, target: Target, headers: Mapping[str, str],
                    labels: dict[str, str], sent: float) -> aiohttp.ClientResponse:
        url = upstream_url(account, target, out.operation, out.query)
        body: object
        if out.body_for is None:
            body = upstream_body(account, target, out.operation, out.body, out.doc)
        else:
            written = out.body_for(account, target)
            body = written.chunks
            headers = {**{k: v for k, v in headers.items() if k.lower() != "content-type"},
                       "Content-Type": written.content_type, "Content-Length": str(written.length)}
        return await self._request(out.method, url, body, headers, account, labels, sent,
                                   {"gateway.deployment": target.deployment})

    async def account_request(self, account: Account, method: str, url: str, headers: Mapping[str, str],
                              body: object) -> aiohttp.ClientResponse:
        """One request to `account` with its credential, outside any model's targets: for objects that
        live in that account (files, stored responses), so no failover. `url` is built by the caller
        from parsed parts; `body` is bytes, an async iterable of bytes, or None."""
        labels = {"gateway.account": account.name}
        with tracer.start_as_current_span("credential", attributes=labels):
            headers = {**headers, **await self.credential_headers(account)}
        return await self._request(method, url, body, headers, account, labels, time.perf_counter())

    async def _request(self, method: str, url: str, body: object, headers: Mapping[str, str],
                       account: Account, labels: dict[str, str], sent: float,
                       more: Mapping[str, str] | None = None) -> aiohttp.ClientResponse:
        """The request, never following a redirect; a timeout or connection error is the failure.
        `labels` go on the span and the duration metric, `more` on the span only."""
        import aiohttp

        with tracer.start_as_current_span("upstream", kind=SpanKind.CLIENT,
                                          attributes={**labels, **(more or {})}) as span:
            try:
                resp = await self._client().request(method, url, data=body, headers=headers,
                                                    allow_redirects=False)
            except TimeoutError:
                span.set_status(StatusCode.ERROR, "timeout")
                raise UpstreamTimeout(f"account {account.name} did not answer in time") from None
            except aiohttp.ClientError as exc:
                span.set_status(StatusCode.ERROR, type(exc).__name__)
                raise UpstreamError(f"could not reach account {account.name} "
                                    f"({type(exc).__name__})") from None
            span.set_attribute("http.response.status_code", resp.status)
            UPSTREAM_DURATION.record(time.perf_counter() - sent,
                                     {**labels, "http.response.status_code": resp.status})
        return resp

    async def aclose(self) -> None:
        """Lets the drains of abandoned streams finish (they are bounded), then closes the session."""
        if self._drains:
            await asyncio.wait(set(self._drains), timeout=DRAIN_SECONDS + 1)
        if self._session is not None:
            await self._session.close()
            self._session = None


async def read_body(resp: aiohttp.ClientResponse, account: Account) -> bytes:
    """The whole answer; a timeout or break while reading it is the failure."""
    import aiohttp

    try:
        return await resp.read()
    except TimeoutError:
        resp.close()
        raise UpstreamTimeout(f"account {account.name} did not finish its answer in time") from None
    except aiohttp.ClientError as exc:
        resp.close()
        raise UpstreamError(f"account {account.name} broke off its answer ({type(exc).__name__})") from None


async def body_chunks(resp: aiohttp.ClientResponse, account: str, request_id: str) -> AsyncIterator[bytes]:
    """The body as it arrives. A break mid-way ends the caller's body early (the connection is cut, so
    the caller sees a truncated body rather than a complete-looking one)."""
    import aiohttp

    try:
        async for chunk in resp.content.iter_any():
            yield chunk
    except (TimeoutError, aiohttp.ClientError) as exc:
        log.warning("request %s: body from %s broke off: %s", request_id, account, type(exc).__name__)
        resp.close()
        raise UpstreamError(f"the answer from account {account} broke off") from None
    resp.release()


def _is_json(content_type: str) -> bool:
    media = content_type.partition(";")[0].strip().lower()
    return media == "application/json" or media.endswith("+json")
