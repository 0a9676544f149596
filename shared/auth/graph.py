"""Reads an Entra user's groups from Microsoft Graph when their token left them out (group overage).

Asked only for an identity provider with `groups_from_graph: true`, with the gateway's own token (the
application permission GroupMember.Read.All), never the caller's. `POST {graph}/v1.0/users/{oid}/
getMemberGroups` for the token's `oid`, which must be a GUID before it goes in the URL; `@odata.nextLink`
is followed only to the same Graph origin, at most MAX_PAGES pages and MAX_BYTES per answer. Answers are
cached per user until the token's `exp` (at most MAX_ENTRIES users), one lookup at a time per user
however many requests wait. A failure is "unknown" (no group matches), cached for FAILURE_SECONDS so an
outage does not turn every request into a Graph call, and logged without the token.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp

log = logging.getLogger("gateway.auth.graph")

GUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
MAX_PAGES = 20
MAX_BYTES = 2 * 1024 * 1024
MAX_GROUPS = 50_000
MAX_ENTRIES = 10_000
FAILURE_SECONDS = 30.0
DEADLINE_SECONDS = 5.0

BODY = {"securityEnabledOnly": False}    # every group, not only security groups
Headers = Callable[[], Awaitable[dict[str, str]]]


class GraphProblem(Exception):
    """Why Graph gave no answer; never holds a token."""


@dataclass(frozen=True, slots=True)
class Groups:
    ids: tuple[str, ...] | None     # None: unknown
    problem: str | None = None


class GroupDirectory:
    def __init__(self, base_url: str, headers: Headers, *, clock: Callable[[], float] = time.time) -> None:
        self._base = base_url.rstrip("/")
        self._origin = _origin(self._base)
        self._headers = headers
        self._clock = clock
        self._cache: dict[tuple[str, str], tuple[Groups, float]] = {}
        self._flights: dict[tuple[str, str], asyncio.Future[Groups]] = {}
        self._session: aiohttp.ClientSession | None = None

    async def lookup(self, provider: str, claims: Mapping[str, Any], exp: int) -> Groups:
        """The user's group ids, or unknown with the reason."""
        oid = claims.get("oid")
        if not isinstance(oid, str) or not GUID_RE.match(oid):
            return Groups(None, "the token has no oid claim holding an object id")
        key = (provider, oid.lower())
        held = self._cache.get(key)
        if held is not None and self._clock() < held[1]:
            return held[0]
        flight = self._flights.get(key)
        if flight is None:
            flight = asyncio.ensure_future(self._fetch_and_keep(key, exp))
            self._flights[key] = flight
            flight.add_done_callback(lambda _: self._flights.pop(key, None))
        return await asyncio.shield(flight)

    async def _fetch_and_keep(self, key: tuple[str, str], exp: int) -> Groups:
        try:
            answer, until = Groups(await self._fetch(key[1])), float(exp)
        except Exception as exc:  # unknown, whatever went wrong: deny by default
            reason = str(exc) if isinstance(exc, GraphProblem) else f"unexpected {type(exc).__name__}"
            log.warning("reading a user's groups from Microsoft Graph failed (provider %s): %s",
                        key[0], reason)
            answer, until = Groups(None, reason), self._clock() + FAILURE_SECONDS
        if len(self._cache) >= MAX_ENTRIES:
            self._evict()
        self._cache[key] = (answer, until)
        return answer

    def _evict(self) -> None:
        now = self._clock()
        for key in [k for k, (_, until) in self._cache.items() if until <= now]:
            del self._cache[key]
        while len(self._cache) >= MAX_ENTRIES:
            del self._cache[next(iter(self._cache))]    # the oldest entry

    async def _fetch(self, oid: str) -> tuple[str, ...]:
        try:
            headers = await self._headers()
        except Exception as exc:  # the credential's own message names the field to fix, never a token
            why = getattr(exc, "public", None) or type(exc).__name__
            raise GraphProblem(f"no Graph token for the gateway: {why}") from None
        url: str | None = f"{self._base}/v1.0/users/{oid}/getMemberGroups"
        found: list[str] = []
        for _ in range(MAX_PAGES):
            if url is None:
                return tuple(found)
            doc = await self._page(url, headers)
            found += _ids(doc)
            if len(found) > MAX_GROUPS:
                raise GraphProblem(f"more than {MAX_GROUPS} groups")
            url = self._next(doc)
        if url is not None:
            raise GraphProblem(f"more than {MAX_PAGES} pages of groups")
        return tuple(found)

    def _next(self, doc: Mapping[str, Any]) -> str | None:
        link = doc.get("@odata.nextLink")
        if link is None:
            return None
        if not isinstance(link, str) or _origin(link) != self._origin:
            raise GraphProblem("its next page link points away from the Graph host")
        return link

    async def _page(self, url: str, headers: dict[str, str]) -> dict[str, Any]:
        session = self._client()
        try:
            async with asyncio.timeout(DEADLINE_SECONDS), session.post(
                    url, json=BODY, headers=headers, allow_redirects=False) as answer:
                status, body = answer.status, await _read(answer)
        except TimeoutError:
            raise GraphProblem(f"no answer within {DEADLINE_SECONDS:g} s") from None
        except aiohttp.ClientError as exc:
            raise GraphProblem(f"could not reach Graph ({type(exc).__name__})") from None
        if status != 200:
            hint = " (grant the gateway's identity GroupMember.Read.All)" if status == 403 else ""
            raise GraphProblem(f"Graph answered HTTP {status}{hint}")
        if len(body) > MAX_BYTES:
            raise GraphProblem(f"an answer over {MAX_BYTES // 1024} KiB")
        try:
            doc = json.loads(body)
        except ValueError:
            raise GraphProblem("an answer that is not JSON") from None
        if not isinstance(doc, dict):
            raise GraphProblem("an answer that is not a JSON object")
        return doc

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(trust_env=False, auto_decompress=False)
        return self._session

    async def aclose(self) -> None:
        for flight in list(self._flights.values()):
            flight.cancel()
        if self._session is not None:
            await self._session.close()


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    return parts.scheme.lower(), (parts.hostname or "").lower(), parts.port


async def _read(answer: aiohttp.ClientResponse) -> bytes:
    """The body, stopping one chunk past MAX_BYTES."""
    chunks, size = [], 0
    async for chunk in answer.content.iter_chunked(64 * 1024):
        chunks.append(chunk)
        size += len(chunk)
        if size > MAX_BYTES:
            break
    return b"".join(chunks)


def _ids(doc: Mapping[str, Any]) -> list[str]:
    value = doc.get("value")
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise GraphProblem("an answer whose value is not a list of ids")
    return list(value)
