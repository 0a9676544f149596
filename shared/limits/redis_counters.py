"""The shared counters on Redis: one key per bucket and window, granted by one Lua script (atomic).

For hot global rules at many instances: a grant is one round trip with no retries on contention.
Keys expire an hour after their window ends, so nothing is ever swept. Azure Managed Redis is reached
over TLS (`rediss://`) with Entra: the username is the managed identity's object id, the password an
access token for `https://redis.azure.com/.default`, fetched again before it expires; idle connections
are then dropped so every connection authenticates with a live token. Plain `redis://` is accepted only
to a loopback address with GATEWAY_DEV_ALLOW_HTTP_LOOPBACK=true (tests and local runs).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ..config.allowlist import is_loopback_host
from ..settings import Settings, SettingsError
from . import windows
from .counters import CounterUnavailable, Grant

if TYPE_CHECKING:
    from azure.core.credentials_async import AsyncTokenCredential
    from redis.asyncio import Redis

log = logging.getLogger("gateway.limits.redis_counters")

TIMEOUT_SECONDS = 3.0
EXPIRY_MARGIN_SECONDS = 3600        # a key outlives its window by this much (clock skew, the status page)
SCOPE = "https://redis.azure.com/.default"
REFRESH_BEFORE_SECONDS = 300        # fetch a new token this long before the current one expires
SETTING = "GATEWAY_LIMITS_REDIS_URL"

# KEYS[1] the counter; ARGV asked, limit, minimum, expiry (epoch seconds). Returns {granted, used}.
GRANT_SCRIPT = """
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
local asked, limit, minimum = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local granted = math.min(asked, math.max(0, limit - used))
if granted < minimum or granted <= 0 then return {0, used} end
used = redis.call('INCRBY', KEYS[1], granted)
redis.call('EXPIREAT', KEYS[1], ARGV[4])
return {granted, used}
"""


def redis_address(settings: Settings) -> tuple[str, bool]:
    """(the URL, whether it is TLS with Entra), checked: rediss:// anywhere, redis:// to loopback in
    development only; never credentials in the URL (Entra supplies them)."""
    url = settings.limits_redis_url
    try:
        parts = urlsplit(url)
        host, _ = parts.hostname or "", parts.port
    except ValueError:
        raise SettingsError(f"{SETTING} is not a URL such as rediss://host:10000") from None
    if parts.username or parts.password:
        raise SettingsError(f"{SETTING} must not carry credentials: the managed identity signs in")
    if not host:
        raise SettingsError(f"{SETTING} needs a host, such as rediss://name.region.redis.azure.net:10000")
    if parts.scheme == "rediss":
        return url, True
    if parts.scheme == "redis" and is_loopback_host(host) and settings.allow_http_loopback:
        return url, False
    raise SettingsError(f"{SETTING} must be rediss://host:port (plain redis:// only to loopback, with "
                        "GATEWAY_DEV_ALLOW_HTTP_LOOPBACK=true)")


def _object_id(token: str) -> str:
    """The `oid` claim of an access token Entra just issued to us (read, not verified: it is ours)."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        return str(claims["oid"])
    except (IndexError, KeyError, ValueError) as exc:
        raise CounterUnavailable("limit counters in redis: the access token has no object id") from exc


class EntraCredentials:
    """redis-py's credential provider interface over an Azure token credential, cached until shortly
    before expiry; `refresh` fetches ahead of time and says whether the token changed."""

    def __init__(self, credential: AsyncTokenCredential) -> None:
        self._credential = credential
        self._token: tuple[str, str, float] | None = None     # (object id, token, expires on)
        self._fetching: asyncio.Task[tuple[str, str, float]] | None = None

    async def _fetch(self) -> tuple[str, str, float]:
        try:
            access = await self._credential.get_token(SCOPE)
        except Exception as exc:     # azure-identity's errors: no token means no counters, not a crash
            raise CounterUnavailable("limit counters in redis: could not get an access token for the "
                                     f"managed identity ({type(exc).__name__})") from None
        return _object_id(access.token), access.token, float(access.expires_on)

    async def refresh(self) -> bool:
        if self._token is not None and self._token[2] - time.time() > REFRESH_BEFORE_SECONDS:
            return False
        if self._fetching is None or self._fetching.done():     # single flight
            self._fetching = asyncio.ensure_future(self._fetch())
        self._token = await asyncio.shield(self._fetching)
        return True

    def get_credentials(self) -> tuple[str, str]:
        if self._token is None:
            raise CounterUnavailable("limit counters in redis: no access token yet")
        return self._token[0], self._token[1]

    async def get_credentials_async(self) -> tuple[str, str]:
        await self.refresh()
        return self.get_credentials()

    async def aclose(self) -> None:
        await self._credential.close()


class RedisCounters:
    """`counters.CounterStore` on one Redis database."""

    def __init__(self, client: Redis, prefix: str, *, credentials: EntraCredentials | None = None,
                 host: str = "redis", timeout: float = TIMEOUT_SECONDS) -> None:
        self._client = client
        self._prefix = f"{prefix}:limits"
        self._credentials = credentials
        self._host = host
        self._timeout = timeout
        self._script = client.register_script(GRANT_SCRIPT)

    @classmethod
    def from_settings(cls, settings: Settings, *, timeout: float = TIMEOUT_SECONDS) -> RedisCounters:
        from redis.asyncio import Redis
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        url, entra = redis_address(settings)
        credentials = None
        if entra:
            from azure.identity.aio import ManagedIdentityCredential

            identity = ManagedIdentityCredential(client_id=settings.azure_client_id or None)
            credentials = EntraCredentials(identity)
        client = Redis.from_url(url, credential_provider=credentials, socket_timeout=timeout,
                                socket_connect_timeout=timeout, retry=Retry(NoBackoff(), 1))
        return cls(client, settings.table_prefix, credentials=credentials, host=urlsplit(url).hostname or "",
                   timeout=timeout)

    def key(self, bucket: str, window: str) -> str:
        return f"{self._prefix}:{window}:{hashlib.sha256(bucket.encode()).hexdigest()[:40]}"

    async def _call(self, action: str, work: Any) -> Any:
        from redis.exceptions import RedisError

        try:
            async with asyncio.timeout(self._timeout):
                if self._credentials is not None and await self._credentials.refresh():
                    await self._client.connection_pool.disconnect(inuse_connections=False)
                return await work()
        except TimeoutError:
            raise CounterUnavailable(f"limit counters in redis at {self._host}: no answer to {action} "
                                     f"in {self._timeout:g} s") from None
        except (RedisError, OSError) as exc:
            raise CounterUnavailable(f"limit counters in redis at {self._host}: could not {action} "
                                     f"({type(exc).__name__})") from None

    async def grant(self, bucket: str, window: str, asked: int, limit: int, *,
                    minimum: int = 1) -> Grant:
        expiry = int(windows.ends_at(window)) + EXPIRY_MARGIN_SECONDS
        granted, used = await self._call("grant", lambda: self._script(
            keys=[self.key(bucket, window)], args=[asked, limit, minimum, expiry]))
        return Grant(int(granted), int(used))

    async def used(self, bucket: str, window: str) -> int:
        value = await self._call("read", lambda: self._client.get(self.key(bucket, window)))
        return int(value or 0)

    async def aclose(self) -> None:
        await self._client.aclose()
        if self._credentials is not None:
            await self._credentials.aclose()
