"""Sends a caller's request to a model's targets with aiohttp and passes the answer back as it comes.

Targets are tried in order on connect error, timeout, 429, 5xx (and 401/403: the gateway's own
credential was refused) before any byte reaches the caller; a non-streaming answer is read whole
before it is sent, so a failure while reading it also moves on to the next target. When every target
fails the caller gets 429 (every target rate limited; the smallest Retry-After, capped), 504 (every
target timed out) or 502. The gateway does not sleep on a Retry-After itself: it answers at once and
the caller (the openai SDK does) waits. Streams are relayed chunk by chunk as they arrive; a failure
mid-stream ends the caller's stream with a final SSE `event: error` and closes the upstream socket.

Usage: the `usage` of a JSON answer, or of the stream's usage chunk, goes to `on_usage` (found by
`usage_scan`, which also asks upstream for usage a streaming caller did not ask for, and hides it).
"""

from __future__ import annotations

import email.utils
import functools
import json
import logging
import math
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import quote, urlencode, urlsplit

from opentelemetry.trace import Span, SpanKind, StatusCode

from ..config.model import Account, Model, Target
from ..errors import GatewayError, RateLimited, Unavailable, UpstreamError, UpstreamTimeout
from ..telemetry import TIME_TO_FIRST_TOKEN, UPSTREAM_DURATION, tracer
from .credentials import Credentials
from .usage_scan import (
    EventScanner,
    UsageSink,
    injects_usage,
    strip_null_usage,
    usage_of_json,
    with_usage_requested,
)

if TYPE_CHECKING:
    import aiohttp
    from starlette.responses import Response

log = logging.getLogger("gateway.upstream")

HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te",
                        "trailer", "trailers", "transfer-encoding", "upgrade"})
# Caller headers worth passing on; everything else (credentials, cookies, identity headers) is dropped.
REQUEST_HEADERS = frozenset({"content-type", "accept", "openai-beta", "x-ms-useragent"})
DROP_RESPONSE = HOP_BY_HOP | {"content-length", "content-encoding", "set-cookie", "server", "date",
                              "x-request-id"}
RETRY_AFTER_CAP = 60
"""Longest Retry-After (seconds) passed on to a caller."""


def is_loopback_host(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@functools.lru_cache(maxsize=1024)
def _endpoint_allowed(endpoint: str, allow_http_loopback: bool) -> bool:
    parts = urlsplit(endpoint)
    if parts.scheme == "https":
        return True
    return parts.scheme == "http" and allow_http_loopback and is_loopback_host(parts.hostname or "")


def check_endpoint(account: Account, allow_http_loopback: bool) -> None:
    """https only; plain http only on loopback, and only with the named development bypass (the
    answer depends on the endpoint text alone, so it is computed once per endpoint)."""
    if _endpoint_allowed(account.endpoint, allow_http_loopback):
        return
    raise Unavailable(f"account {account.name}: endpoint {account.endpoint!r} must use https "
                      "(plain http is allowed only on loopback with GATEWAY_DEV_ALLOW_HTTP_LOOPBACK=true)")


# Operations Azure serves only on its v1 surface (model named in the body), whatever the account's style.
V1_ONLY = frozenset({"responses"})


def uses_v1(account: Account, operation: str) -> bool:
    return account.api_style == "v1" or operation.split("/", 1)[0] in V1_ONLY


def upstream_url(account: Account, target: Target, operation: str, query: Mapping[str, str]) -> str:
    if uses_v1(account, operation):
        return f"{account.endpoint}/openai/v1/{operation}"
    params = {k: v for k, v in query.items() if k == "api-version"} or {"api-version": account.api_version}
    return (f"{account.endpoint}/openai/deployments/{quote(target.deployment, safe='')}/{operation}?"
            f"{urlencode(params)}")


def upstream_body(account: Account, target: Target, operation: str, raw: bytes,
                  doc: dict[str, object]) -> bytes:
    """The caller's bytes, except that the v1 style names the deployment in `model`."""
    if not uses_v1(account, operation):
        return raw
    return json.dumps({**doc, "model": target.deployment}, separators=(",", ":")).encode()


class Forwarder:
    def __init__(self, *, credentials: Credentials, timeout_seconds: float,
                 allow_http_loopback: bool = False, connect_timeout_seconds: float = 10.0) -> None:
        self._credentials = credentials
        self._allow_http_loopback = allow_http_loopback
        self._timeout = timeout_seconds
        self._connect_timeout = connect_timeout_seconds
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        """One session per process, made inside the running loop on first use."""
        if self._session is None or self._session.closed:
            import aiohttp

            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0, ttl_dns_cache=300, enable_cleanup_closed=True),
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=self._connect_timeout,
                                              sock_read=self._timeout),
                auto_decompress=False, skip_auto_headers=("User-Agent",))
        return self._session

    async def forward(self, *, model: Model, accounts: Mapping[str, Account], operation: str,
                      raw: bytes, doc: dict[str, object], query: Mapping[str, str],
                      caller_headers: Mapping[str, str], request_id: str,
                      on_usage: UsageSink | None = None) -> Response:
        import aiohttp

        failures: list[GatewayError] = []
        base_headers = {k: v for k, v in caller_headers.items() if k.lower() in REQUEST_HEADERS}
        base_headers.update({"x-request-id": request_id, "x-ms-client-request-id": request_id,
                             "accept-encoding": "identity"})
        injected = injects_usage(operation, doc)
        if injected:
            doc = with_usage_requested(doc)
            raw = json.dumps(doc, separators=(",", ":")).encode()
        for target in model.targets:
            account = accounts.get(target.account)
            if account is None:
                failures.append(Unavailable(f"model {model.name}: account {target.account!r} is not "
                                            "configured"))
                continue
            labels = {"gateway.model": model.name, "gateway.account": account.name}
            try:
                with tracer.start_as_current_span("credential", attributes=labels):
                    check_endpoint(account, self._allow_http_loopback)
                    credential = self._credentials.for_account(account)
                    headers = {**base_headers, **await credential.auth_headers()}
            except GatewayError as exc:
                failures.append(exc)
                log.warning("request %s: account %s unusable: %s", request_id, account.name, exc.message)
                continue
            url = upstream_url(account, target, operation, query)
            body = upstream_body(account, target, operation, raw, doc)
            sent = time.perf_counter()
            with tracer.start_as_current_span("upstream", kind=SpanKind.CLIENT, attributes={
                    **labels, "gateway.deployment": target.deployment}) as span:
                try:
                    resp = await self._client().post(url, data=body, headers=headers, allow_redirects=False)
                except TimeoutError:
                    failures.append(UpstreamTimeout(f"account {account.name} did not answer in time"))
                    log.warning("request %s: %s timed out", request_id, account.name)
                    span.set_status(StatusCode.ERROR, "timeout")
                    continue
                except aiohttp.ClientError as exc:
                    failures.append(UpstreamError(f"could not reach account {account.name} "
                                                  f"({type(exc).__name__})"))
                    log.warning("request %s: %s unreachable: %s", request_id, account.name,
                                type(exc).__name__)
                    span.set_status(StatusCode.ERROR, type(exc).__name__)
                    continue
                span.set_attribute("http.response.status_code", resp.status)
                UPSTREAM_DURATION.record(time.perf_counter() - sent,
                                         {**labels, "http.response.status_code": resp.status})
            if resp.status == 429 or resp.status >= 500 or resp.status in (401, 403):
                failures.append(_failure(account, resp))
                resp.release()
                log.warning("request %s: %s answered %s", request_id, account.name, resp.status)
                continue
            sink = on_usage if 200 <= resp.status < 300 else None
            if resp.headers.get("Content-Type", "").startswith("text/event-stream"):
                from starlette.responses import StreamingResponse

                watch = StreamWatch(tracer.start_span("stream", attributes=labels), labels, sent)
                return StreamingResponse(_stream(resp, request_id, account.name, sink, injected, watch),
                                         status_code=resp.status, headers=_response_headers(resp, request_id))
            try:
                answer = await resp.read()
            except TimeoutError:
                resp.close()
                failures.append(UpstreamTimeout(f"account {account.name} did not finish its answer in time"))
                log.warning("request %s: %s timed out mid-answer", request_id, account.name)
                continue
            except aiohttp.ClientError as exc:
                resp.close()
                failures.append(UpstreamError(f"account {account.name} broke off its answer "
                                              f"({type(exc).__name__})"))
                log.warning("request %s: %s broke off: %s", request_id, account.name, type(exc).__name__)
                continue
            if sink is not None:
                _deliver(sink, usage_of_json(answer), request_id)
            from starlette.responses import Response

            return Response(answer, status_code=resp.status, headers=_response_headers(resp, request_id))
        raise combined_failure(model.name, failures)

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def combined_failure(model: str, failures: list[GatewayError]) -> GatewayError:
    """What the caller sees when every target failed: 429 if all were rate limited (the soonest
    Retry-After), 504 if all timed out, one failure's own kind if all were alike, else 502."""
    if not failures:
        return UpstreamError(f"model {model} has no targets")
    if len(failures) == 1:
        return failures[0]
    message = f"every target of model {model} failed: " + "; ".join(f.message for f in failures)
    kinds = {type(f) for f in failures}
    if kinds == {RateLimited}:
        waits = [int(f.headers["Retry-After"]) for f in failures if "Retry-After" in f.headers]
        return RateLimited(message, min(waits) if waits else None)
    kind = kinds.pop() if len(kinds) == 1 else UpstreamError
    return kind(message) if kind in (UpstreamTimeout, Unavailable) else UpstreamError(message)


def retry_after_seconds(value: str | None, now: float | None = None) -> int:
    """A Retry-After (delta seconds or HTTP date) as whole seconds in 1..RETRY_AFTER_CAP."""
    seconds: float = 1
    if value:
        value = value.strip()
        try:
            seconds = float(value)
        except ValueError:
            try:
                when = email.utils.parsedate_to_datetime(value)
                seconds = when.timestamp() - (time.time() if now is None else now)
            except (TypeError, ValueError, IndexError, OverflowError):
                seconds = 1
    if not math.isfinite(seconds):
        seconds = RETRY_AFTER_CAP
    return int(min(RETRY_AFTER_CAP, max(1, math.ceil(seconds))))


def _failure(account: Account, resp: aiohttp.ClientResponse) -> GatewayError:
    if resp.status == 429:
        return RateLimited(f"account {account.name} is rate limited",
                           retry_after_seconds(resp.headers.get("Retry-After")))
    if resp.status in (401, 403):
        return UpstreamError(f"account {account.name} refused the gateway's credential "
                             f"(HTTP {resp.status}): check the account's auth settings and role "
                             "assignments")
    return UpstreamError(f"account {account.name} failed (HTTP {resp.status})")


def _response_headers(resp: aiohttp.ClientResponse, request_id: str) -> dict[str, str]:
    headers = {k: v for k, v in resp.headers.items() if k.lower() not in DROP_RESPONSE}
    headers["x-request-id"] = request_id
    return headers


def _deliver(sink: UsageSink, usage: Mapping[str, object] | None, request_id: str) -> None:
    try:
        sink(usage)
    except Exception:
        log.exception("request %s: recording usage failed", request_id)


@dataclass(slots=True)
class StreamWatch:
    """The stream's span and the time to its first chunk, which outlive the request handler."""

    span: Span
    labels: dict[str, str]
    sent: float
    first: bool = True

    def chunk(self) -> None:
        if self.first:
            self.first = False
            TIME_TO_FIRST_TOKEN.record(time.perf_counter() - self.sent, self.labels)
            self.span.add_event("first chunk")


async def _stream(resp: aiohttp.ClientResponse, request_id: str, account: str, sink: UsageSink | None,
                  injected: bool, watch: StreamWatch) -> AsyncIterator[bytes]:
    """Relays upstream bytes as they come. Untouched unless the gateway injected include_usage: then
    each complete event is passed on as soon as it completes, minus what the injection added."""
    import aiohttp

    finished = False
    scanner = EventScanner()
    scanning = sink is not None or injected
    try:
        async for chunk in resp.content.iter_any():
            watch.chunk()
            if not scanning:
                yield chunk
                continue
            events = scanner.feed(chunk)
            if not injected:
                yield chunk
                for event in events:
                    scanner.usage_of(event)
                if scanner.overlong():
                    scanner.rest()
                continue
            out = []
            for event in events:
                _, usage_only = scanner.usage_of(event)
                if not usage_only:
                    out.append(strip_null_usage(event))
            if out:
                yield b"".join(out)
            if scanner.overlong():
                yield scanner.rest()
        if injected and (tail := scanner.rest()):
            yield tail
        finished = True
    except (TimeoutError, aiohttp.ClientError) as exc:
        log.warning("request %s: stream from %s broke off: %s", request_id, account, type(exc).__name__)
        error = UpstreamError(f"the upstream stream from account {account} broke off")
        # An unfinished event already passed on is closed first, so the error event stands alone.
        watch.span.set_status(StatusCode.ERROR, "upstream stream broke off")
        yield (b"\n\n" if scanner.rest() and not injected else b"") + \
            b"event: error\ndata: " + json.dumps(error.body()).encode() + b"\n\n"
    finally:
        watch.span.set_attribute("gateway.stream.completed", finished)
        watch.span.end()
        if finished:
            resp.release()
        else:
            resp.close()
        if sink is not None:
            _deliver(sink, scanner.usage, request_id)
