"""One HTTP exchange with an MCP server or agent: under the address policy, without redirects, against
a deadline.

The URL is the configured one, never built from caller text. Every connection's address is checked
after DNS (shared/auth/addresses.py): metadata, link-local and the like always refused, private ranges
only for a server with `allow_private_network`, loopback only in development. A redirect is an error,
never followed. `timeout_s` bounds the wait for the answer to start and every silence within it.
"""

from __future__ import annotations

import asyncio
import errno
import ssl
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import aiohttp

from ..auth.addresses import AddressPolicy, AddressRefused, socket_factory

if TYPE_CHECKING:
    from aiohttp.abc import AbstractResolver
    from multidict import CIMultiDictProxy

CHUNK = 64 * 1024


class RemoteFailure(Exception):
    """The exchange failed before or while answering. `kind`: timeout, unreachable, redirect,
    too_large or protocol; `message` is safe to show a caller (no address, no credential)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


@dataclass(frozen=True, slots=True)
class RemoteRequest:
    method: str
    url: str
    headers: Mapping[str, str]
    body: bytes | None
    timeout_s: float
    allow_private_network: bool = False


class RemoteReply:
    """An answer whose head has arrived; its body is read with `read` or `chunks`, then `release`d."""

    def __init__(self, response: aiohttp.ClientResponse, timeout_s: float) -> None:
        self._response = response
        self._timeout = timeout_s
        self.status = response.status
        self.headers: CIMultiDictProxy[str] = response.headers

    @property
    def content_type(self) -> str:
        return self.headers.get("Content-Type", "").split(";", 1)[0].strip().lower()

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body as it arrives; a silence longer than the deadline ends it with RemoteFailure."""
        try:
            while True:
                async with asyncio.timeout(self._timeout):
                    chunk = await self._response.content.readany()
                if not chunk:
                    return
                yield chunk
        except TimeoutError:
            raise RemoteFailure("timeout", f"the server went silent for {self._timeout:g} s") from None
        except aiohttp.ClientError:
            raise RemoteFailure("unreachable", "the server's answer broke off") from None
        finally:
            self.release()

    async def read(self, limit: int) -> bytes:
        """The whole body, refused once it passes `limit` bytes."""
        body = bytearray()
        async for chunk in self.chunks():
            body += chunk
            if len(body) > limit:
                self.release()
                raise RemoteFailure("too_large", f"the server's answer is over {limit} bytes")
        return bytes(body)

    def release(self) -> None:
        self._response.release()


class RemoteClient:
    """aiohttp, one pooled session per address policy, created inside the running loop."""

    def __init__(self, *, allow_http_loopback: bool = False, resolver: AbstractResolver | None = None,
                 ssl_context: ssl.SSLContext | None = None) -> None:
        self._loopback = allow_http_loopback
        self._resolver = resolver
        self._ssl: ssl.SSLContext | bool = ssl_context if ssl_context is not None else True
        self._sessions: dict[AddressPolicy, aiohttp.ClientSession] = {}

    def _policy(self, url: str, allow_private: bool) -> AddressPolicy:
        scheme = urlsplit(url).scheme
        if scheme not in ("https", "http") or (scheme == "http" and not self._loopback):
            raise RemoteFailure("unreachable", "the server's URL is not allowed (https only)")
        return AddressPolicy(allow_loopback=self._loopback, allow_private=allow_private,
                             require_loopback=scheme == "http")

    def _session(self, policy: AddressPolicy) -> aiohttp.ClientSession:
        session = self._sessions.get(policy)
        if session is None or session.closed:
            connector = aiohttp.TCPConnector(resolver=self._resolver, socket_factory=socket_factory(policy),
                                             ssl=self._ssl, limit=256, limit_per_host=64, ttl_dns_cache=30,
                                             keepalive_timeout=15)
            session = aiohttp.ClientSession(connector=connector, auto_decompress=False, trust_env=False,
                                            max_line_size=8190, max_field_size=8190, max_headers=64,
                                            timeout=aiohttp.ClientTimeout(total=None), skip_auto_headers=(
                                                "User-Agent", "Accept-Encoding"))
            self._sessions[policy] = session
        return session

    async def open(self, req: RemoteRequest) -> RemoteReply:
        """Send the request; return once the answer's head has arrived (RemoteFailure otherwise)."""
        session = self._session(self._policy(req.url, req.allow_private_network))
        try:
            async with asyncio.timeout(req.timeout_s):
                response = await session.request(req.method, req.url, headers=dict(req.headers),
                                                 data=req.body, allow_redirects=False)
        except TimeoutError:
            raise RemoteFailure("timeout", f"the server did not answer within {req.timeout_s:g} s") from None
        except aiohttp.ClientConnectorError as exc:
            refused = isinstance(exc.os_error, AddressRefused) or exc.os_error.errno == errno.EACCES
            raise RemoteFailure("unreachable", "the server's address is not allowed" if refused
                                else "the server cannot be reached") from None
        except aiohttp.ClientError:
            raise RemoteFailure("unreachable", "the server cannot be reached") from None
        if 300 <= response.status < 400:
            response.release()
            raise RemoteFailure("redirect", f"the server answered a redirect (HTTP {response.status}), "
                                "which the gateway does not follow")
        return RemoteReply(response, req.timeout_s)

    async def aclose(self) -> None:
        sessions, self._sessions = list(self._sessions.values()), {}
        for session in sessions:
            await session.close()
