"""The one HTTP client behind JWKS, discovery and the console's code exchange, hardened for
admin-supplied URLs and hostile servers.

https only (plain http only to loopback, in development); the address of every connection is checked
at connect time (`addresses`); no redirects; no proxies from the environment; no compression; a body
cap (1 MB, checked on the declared length and on the bytes read; headers capped at 64 x 8 KB) and one
total deadline (5 s) covering connect, headers and body, so a 50 MB answer or a 1-byte-per-half-second
trickle ends on time.
`FetchError` messages are safe to show a caller: they never contain the URL.
"""

from __future__ import annotations

import asyncio
import errno
import ssl
from typing import Protocol
from urllib.parse import urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver

from .addresses import AddressPolicy, AddressRefused, socket_factory

MAX_BODY_BYTES = 1024 * 1024
DEADLINE_SECONDS = 5.0
_CHUNK = 64 * 1024


class FetchError(Exception):
    """The fetch failed; the message says how, without the URL."""


class Fetcher(Protocol):
    """What the key cache needs from the network: one GET, bytes back, or `FetchError`."""

    async def get(self, url: str, *, allow_private_network: bool) -> bytes: ...

    async def aclose(self) -> None: ...


class HttpFetcher:
    """aiohttp, one session per address policy, created lazily inside the running event loop.

    `resolver` and `ssl_context` exist for tests (a resolver mapping test names to chosen addresses,
    a test CA); production uses the system resolver and the default trust store.
    """

    def __init__(self, *, allow_http_loopback: bool = False, max_bytes: int = MAX_BODY_BYTES,
                 deadline_seconds: float = DEADLINE_SECONDS, resolver: AbstractResolver | None = None,
                 ssl_context: ssl.SSLContext | None = None) -> None:
        self.allow_http_loopback = allow_http_loopback
        self.max_bytes = max_bytes
        self.deadline_seconds = deadline_seconds
        self._resolver = resolver
        self._ssl: ssl.SSLContext | bool = ssl_context if ssl_context is not None else True
        self._sessions: dict[AddressPolicy, aiohttp.ClientSession] = {}

    def policy_for(self, url: str, *, allow_private_network: bool) -> AddressPolicy:
        """The address policy for this URL, or `FetchError` when the URL itself is refused."""
        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018 - raises ValueError on a bad port
        except ValueError:
            raise FetchError("the URL is malformed") from None
        scheme = parts.scheme.lower()
        if scheme not in ("https", "http"):
            raise FetchError(f"{scheme or 'relative'} URLs are refused: JWKS and discovery URLs "
                             "must be https")
        if parts.username is not None or parts.password is not None:
            raise FetchError("URLs with credentials are refused")
        if not parts.hostname:
            raise FetchError("the URL has no host")
        if scheme == "http" and not self.allow_http_loopback:
            raise FetchError("plain http is refused: use https (GATEWAY_DEV_ALLOW_HTTP_LOOPBACK=true "
                             "allows http to loopback addresses in development)")
        return AddressPolicy(allow_loopback=self.allow_http_loopback, allow_private=allow_private_network,
                             require_loopback=scheme == "http")

    def _session(self, policy: AddressPolicy) -> aiohttp.ClientSession:
        session = self._sessions.get(policy)
        if session is None or session.closed:
            connector = aiohttp.TCPConnector(
                resolver=self._resolver, socket_factory=socket_factory(policy), use_dns_cache=False,
                force_close=True, ssl=self._ssl, limit=32)
            session = aiohttp.ClientSession(
                connector=connector, auto_decompress=False, trust_env=False,
                max_line_size=8190, max_field_size=8190, max_headers=64,   # headers are bounded too
                timeout=aiohttp.ClientTimeout(total=self.deadline_seconds),
                headers={"Accept": "application/json", "Accept-Encoding": "identity",
                         "User-Agent": "ai-gateway-jwks/1"})
            self._sessions[policy] = session
        return session

    async def get(self, url: str, *, allow_private_network: bool) -> bytes:
        return (await self._fetch(url, None, allow_private_network))[1]

    async def post_form(self, url: str, form: dict[str, str], *,
                        allow_private_network: bool) -> tuple[int, bytes]:
        """A form POST under the same rules (an OAuth token request): the status and body of any
        non-redirect answer, so that an error answer's body can be read."""
        return await self._fetch(url, form, allow_private_network)

    async def _fetch(self, url: str, form: dict[str, str] | None,
                     allow_private_network: bool) -> tuple[int, bytes]:
        policy = self.policy_for(url, allow_private_network=allow_private_network)
        session = self._session(policy)
        try:
            async with asyncio.timeout(self.deadline_seconds):
                return await self._send(session, url, form)
        except TimeoutError:
            raise FetchError(f"no complete answer within {self.deadline_seconds:g} s") from None
        except aiohttp.ClientConnectorError as exc:
            refused = exc.os_error if isinstance(exc.os_error, AddressRefused) else None
            if refused is not None:
                raise FetchError(f"connection refused by the address policy: {refused.reason}") from None
            detail = exc.os_error.strerror or str(exc.os_error) or type(exc.os_error).__name__
            if exc.os_error.errno == errno.EACCES and detail.startswith("Multiple exceptions"):
                # every address of the name was refused (aiohappyeyeballs joins their messages)
                detail = detail.removeprefix("Multiple exceptions: ").replace("[Errno 13] ", "")
                raise FetchError(f"connection refused by the address policy: {detail}") from None
            raise FetchError(f"cannot connect: {detail}") from None
        except aiohttp.ClientError as exc:
            raise FetchError(f"HTTP error: {type(exc).__name__}") from None

    async def _send(self, session: aiohttp.ClientSession, url: str,
                    form: dict[str, str] | None) -> tuple[int, bytes]:
        sent = session.get(url, allow_redirects=False) if form is None else \
            session.post(url, data=form, allow_redirects=False)
        async with sent as response:
            if 300 <= response.status < 400:
                raise FetchError(f"redirect (HTTP {response.status}) refused: configure the final URL")
            if response.status != 200 and form is None:
                raise FetchError(f"HTTP {response.status}")
            encoding = response.headers.get("Content-Encoding", "identity").strip().lower()
            if encoding not in ("", "identity"):
                raise FetchError(f"compressed answer ({encoding[:20]}) refused")
            declared = response.content_length
            if declared is not None and declared > self.max_bytes:
                raise FetchError(f"answer of {declared} bytes is over the {self._cap()} limit")
            body = bytearray()
            async for chunk in response.content.iter_chunked(_CHUNK):
                body += chunk
                if len(body) > self.max_bytes:
                    raise FetchError(f"answer is over the {self._cap()} limit")
            return response.status, bytes(body)

    def _cap(self) -> str:
        mb = self.max_bytes / (1 << 20)
        return f"{mb:g} MB" if mb >= 1 else f"{self.max_bytes} bytes"

    async def aclose(self) -> None:
        sessions, self._sessions = list(self._sessions.values()), {}
        for session in sessions:
            await session.close()
