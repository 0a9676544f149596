"""The shared counters on Azure Table Storage: one entity per bucket and window length in `<prefix>limits`.

`grant` reads the counter and writes the new total only if the entity is still the version it read
(an ETag compare-and-set: update with If-Match, or create when it is absent); a writer that lost the
race (412, or 409 on create) reads again after a jittered pause. Attempts are bounded and the whole
call runs under a timeout, so a grant either lands exactly once or raises CounterUnavailable.

Keys: PartitionKey is a hash of the bucket and the window length (minute, hour, day, month: every
counter a partition of its own, so hot buckets never share a partition's throughput), RowKey is the
window length; the window key it counts, the readable bucket and the limit are properties. At rollover
the first grant of the new window replaces the count by the same compare-and-set, so the table holds one
row per bucket and window length, and never rows of ended windows. An instance whose clock is behind
(it asks for a window older than the one stored) is granted nothing until its clock reaches it: the
error stays on the side of under-admission.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import random
from typing import TYPE_CHECKING, Any

from ..config.tables import Raced, Table, etag_of, service_from_settings
from ..errors import GatewayError
from ..settings import Settings
from .counters import CounterUnavailable, Grant

if TYPE_CHECKING:
    from azure.data.tables.aio import TableServiceClient

log = logging.getLogger("gateway.limits.table_counters")

TABLE_SUFFIX = "limits"
TIMEOUT_SECONDS = 3.0       # one grant, every attempt included
ATTEMPTS = 12               # compare-and-set rounds before the counter counts as unavailable
BACKOFF_SECONDS = 0.005     # the first pause after a lost race; doubles, with full jitter
BACKOFF_CAP_SECONDS = 0.2
BUCKET_TEXT_MAX = 1024      # the readable bucket kept in the entity (keys are hashed, not this)


def counter_keys(bucket: str, window: str) -> tuple[str, str]:
    """(PartitionKey, RowKey) of the counter for a window key's length (`windows.key` starts with its
    length's letter): keys may not hold `/`, `#` or `?`, a bucket may."""
    length = window[:1]
    return hashlib.sha256(f"{bucket}\n{length}".encode()).hexdigest()[:40], length


def _used_in(entity: Any, window: str) -> int | None:
    """The count of `window` in the entity: 0 when it counts an older window (about to be replaced),
    None when it counts a newer one (this instance's clock is behind)."""
    if entity is None:
        return 0
    stored = str(entity.get("window", ""))
    if stored == window:
        return _number(entity, "used")
    return 0 if stored < window else None


def _number(entity: Any, name: str) -> int:
    value = entity.get(name, 0)
    return int(getattr(value, "value", value) or 0)


class TableCounters:
    """`counters.CounterStore` on one table; safe to share between tasks of one event loop."""

    def __init__(self, service: TableServiceClient, prefix: str, *, timeout: float = TIMEOUT_SECONDS,
                 attempts: int = ATTEMPTS, owns_service: bool = True) -> None:
        self._service = service
        self._owns_service = owns_service     # False: the gateway's one client, closed by its owner
        self.table_name = f"{prefix}{TABLE_SUFFIX}"
        self._table = Table(service.get_table_client(self.table_name))
        self._ready = False
        self._timeout = timeout
        self._attempts = attempts

    @classmethod
    def from_settings(cls, settings: Settings, *, timeout: float = TIMEOUT_SECONDS) -> TableCounters:
        return cls(service_from_settings(settings), settings.table_prefix, timeout=timeout)

    def _unavailable(self, why: str) -> CounterUnavailable:
        return CounterUnavailable(f"limit counters in table {self.table_name}: {why}")

    async def grant(self, bucket: str, window: str, asked: int, limit: int, *,
                    minimum: int = 1) -> Grant:
        try:
            async with asyncio.timeout(self._timeout):
                return await self._grant(bucket, window, asked, limit, minimum)
        except TimeoutError:
            raise self._unavailable(f"no answer in {self._timeout:g} s") from None
        except GatewayError as exc:     # Unavailable: the adapter's message names the table, not a key
            raise self._unavailable(exc.message if hasattr(exc, "message") else str(exc)) from None

    async def _grant(self, bucket: str, window: str, asked: int, limit: int, minimum: int) -> Grant:
        pk, rk = counter_keys(bucket, window)
        pause = BACKOFF_SECONDS
        for _ in range(self._attempts):
            if not self._ready:
                await self._table.ensure()
                self._ready = True
            entity = await self._table.get(pk, rk)
            used = _used_in(entity, window)
            if used is None:
                return Grant(0, limit)
            granted = min(asked, max(0, limit - used))
            if granted < minimum or granted <= 0:
                return Grant(0, used)
            try:
                await self._write(entity, pk, rk, bucket, window, used + granted, limit)
                return Grant(granted, used + granted)
            except Raced:
                self._ready = entity is not None     # a create can also fail because the table is gone
            await asyncio.sleep(random.uniform(0, pause))  # noqa: S311 (jitter, not a secret)
            pause = min(pause * 2, BACKOFF_CAP_SECONDS)
        raise self._unavailable(f"still contended after {self._attempts} attempts")

    async def _write(self, entity: Any, pk: str, rk: str, bucket: str, window: str, used: int,
                     limit: int) -> None:
        from azure.data.tables import EdmType, EntityProperty

        row = {"PartitionKey": pk, "RowKey": rk, "bucket": bucket[:BUCKET_TEXT_MAX], "window": window,
               "used": EntityProperty(used, EdmType.INT64), "limit": EntityProperty(limit, EdmType.INT64)}
        if entity is None:
            await self._table.create(row)
        else:
            await self._table.replace(row, etag_of(entity))

    async def used(self, bucket: str, window: str) -> int:
        try:
            async with asyncio.timeout(self._timeout):
                entity = await self._table.get(*counter_keys(bucket, window))
        except TimeoutError:
            raise self._unavailable(f"no answer in {self._timeout:g} s") from None
        except GatewayError as exc:
            raise self._unavailable(str(exc)) from None
        used = _used_in(entity, window)
        return 0 if used is None else used

    async def aclose(self) -> None:
        if self._owns_service:
            await self._service.close()
