"""Sends a caller's request to a model's targets with aiohttp and passes the answer back as it comes.

Targets are tried in order on connect error, timeout, 429 or 5xx, before any byte reaches the
caller. Streams are relayed chunk by chunk as they arrive; a failure mid-stream ends the caller's
stream with a final SSE error event.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING
from urllib.parse import quote, urlencode, urlsplit

from ..config.model import Account, Model, Target
from ..errors import GatewayError, RateLimited, Unavailable, UpstreamError, UpstreamTimeout
from .credentials import Credentials

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


def is_loopback_host(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_endpoint(account: Account, allow_http_loopback: bool) -> None:
    """https only; plain http only on loopback, and only with the named development bypass."""
    parts = urlsplit(account.endpoint)
    if parts.scheme == "https":
        return
    if parts.scheme == "http" and allow_http_loopback and is_loopback_host(parts.hostname or ""):
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
                      caller_headers: Mapping[str, str], request_id: str) -> Response:
        import aiohttp

        failure: GatewayError | None = None
        retry_after: int | None = None
        base_headers = {k: v for k, v in caller_headers.items() if k.lower() in REQUEST_HEADERS}
        base_headers.update({"x-request-id": request_id, "x-ms-client-request-id": request_id,
                             "accept-encoding": "identity"})
        for target in model.targets:
            account = accounts.get(target.account)
            if account is None:
                failure = Unavailable(f"model {model.name}: account {target.account!r} is not configured")
                continue
            try:
                check_endpoint(account, self._allow_http_loopback)
                headers = {**base_headers, **await self._credentials.for_account(account).auth_headers()}
            except GatewayError as exc:
                failure = exc
                log.warning("request %s: account %s unusable: %s", request_id, account.name, exc.message)
                continue
            url = upstream_url(account, target, operation, query)
            body = upstream_body(account, target, operation, raw, doc)
            try:
                resp = await self._client().post(url, data=body, headers=headers, allow_redirects=False)
            except TimeoutError:
                failure = UpstreamTimeout(f"account {account.name} did not answer in time")
                log.warning("request %s: %s timed out", request_id, account.name)
                continue
            except aiohttp.ClientError as exc:
                failure = UpstreamError(f"could not reach account {account.name} ({type(exc).__name__})")
                log.warning("request %s: %s unreachable: %s", request_id, account.name, type(exc).__name__)
                continue
            if resp.status == 429 or resp.status >= 500 or resp.status in (401, 403):
                failure, retry_after = _failure(account, resp, retry_after)
                resp.release()
                log.warning("request %s: %s answered %s", request_id, account.name, resp.status)
                continue
            return await _relay(resp, request_id, account.name)
        if isinstance(failure, RateLimited) and retry_after:
            failure = RateLimited(failure.message, retry_after)
        raise failure or UpstreamError(f"model {model.name} has no targets")

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def _failure(account: Account, resp: aiohttp.ClientResponse,
             retry_after: int | None) -> tuple[GatewayError, int | None]:
    if resp.status == 429:
        try:
            seconds = min(RETRY_AFTER_CAP, max(1, int(float(resp.headers.get("Retry-After", "1")))))
        except ValueError:
            seconds = 1
        retry_after = min(retry_after or seconds, seconds)
        return RateLimited(f"account {account.name} is rate limited", retry_after), retry_after
    if resp.status in (401, 403):
        return UpstreamError(f"account {account.name} refused the gateway's credential "
                             f"(HTTP {resp.status}): check the account's auth settings and role "
                             "assignments"), retry_after
    return UpstreamError(f"account {account.name} failed (HTTP {resp.status})"), retry_after


def _response_headers(resp: aiohttp.ClientResponse, request_id: str) -> dict[str, str]:
    headers = {k: v for k, v in resp.headers.items() if k.lower() not in DROP_RESPONSE}
    headers["x-request-id"] = request_id
    return headers


async def _relay(resp: aiohttp.ClientResponse, request_id: str, account: str) -> Response:
    from starlette.responses import Response, StreamingResponse

    headers = _response_headers(resp, request_id)
    if not resp.headers.get("Content-Type", "").startswith("text/event-stream"):
        try:
            body = await resp.read()
        except Exception as exc:
            resp.close()
            raise UpstreamError(f"account {account} broke off its answer ({type(exc).__name__})") from exc
        return Response(body, status_code=resp.status, headers=headers)
    return StreamingResponse(_stream(resp, request_id, account), status_code=resp.status, headers=headers)


async def _stream(resp: aiohttp.ClientResponse, request_id: str, account: str) -> AsyncIterator[bytes]:
    import aiohttp

    finished = False
    try:
        async for chunk in resp.content.iter_any():
            yield chunk
        finished = True
    except (TimeoutError, aiohttp.ClientError) as exc:
        log.warning("request %s: stream from %s broke off: %s", request_id, account, type(exc).__name__)
        error = UpstreamError(f"the upstream stream from account {account} broke off")
        yield b"event: error\ndata: " + json.dumps(error.body()).encode() + b"\n\n"
    finally:
        if finished:
            resp.release()
        else:
            resp.close()
