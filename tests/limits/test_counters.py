"""What a counter store grants: the same table of cases for every store (in memory, Table Storage on
Azurite, Redis on a redis-server), and what the stores keep and refuse."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from sandbox.azurite import Azurite
from shared.limits import windows
from shared.limits.counters import CounterStore, CounterUnavailable, Grant
from shared.limits.redis_counters import redis_address
from shared.limits.stores import counter_store
from shared.limits.table_counters import TableCounters, counter_keys
from shared.settings import SettingsError, load
from tests.harness import unique_prefix
from tests.limits.conftest import RedisServer

WINDOW = windows.key("day", time.time() + 86400)           # windows that have not ended: Redis
OTHER_WINDOW = windows.key("day", time.time() + 2 * 86400)  # expires a counter after its window
BUCKET = "per-user|user:okta-prod/00u#1?x|gpt-4o"     # every character a table key may not hold


@pytest.mark.parametrize(("used_before", "asked", "limit", "minimum", "expected"), [
    (0, 5, 10, 1, Grant(5, 5)),          # room: all of it
    (8, 5, 10, 1, Grant(2, 10)),         # short of room: what is left
    (8, 5, 10, 2, Grant(2, 10)),         # what is left is exactly the minimum
    (8, 5, 10, 3, Grant(0, 8)),          # less than the minimum: nothing
    (10, 1, 10, 1, Grant(0, 10)),        # at the limit
    (8, 1, 5, 1, Grant(0, 8)),           # the limit was lowered under what was granted
    (0, 0, 10, 0, Grant(0, 0)),          # asking for nothing writes nothing
    (0, 3_000_000_000, 5_000_000_000, 1, Grant(3_000_000_000, 3_000_000_000)),   # past 32 bits (micro-USD)
])
async def test_grant(store: CounterStore, used_before: int, asked: int, limit: int, minimum: int,
                     expected: Grant) -> None:
    if used_before:
        assert await store.grant(BUCKET, WINDOW, used_before, used_before) == Grant(used_before, used_before)
    assert await store.grant(BUCKET, WINDOW, asked, limit, minimum=minimum) == expected
    assert await store.used(BUCKET, WINDOW) == expected.used


async def test_counters_are_per_bucket_and_window(store: CounterStore) -> None:
    await store.grant(BUCKET, WINDOW, 7, 10)
    assert await store.grant(BUCKET + "x", WINDOW, 10, 10) == Grant(10, 10)
    assert await store.used(BUCKET, WINDOW) == 7
    assert await store.grant(BUCKET, OTHER_WINDOW, 10, 10) == Grant(10, 10)    # a new window starts at 0
    assert await store.used(BUCKET, OTHER_WINDOW) == 10
    assert await store.used("never-seen", WINDOW) == 0


async def test_concurrent_grants_never_pass_the_limit(store: CounterStore) -> None:
    """Many writers at once on one counter: every compare-and-set loser retries, none over-grants. (Twelve
    writers: enough to race, few enough that the last one's retries fit the store's timeout on a busy
    machine.)"""
    grants = await asyncio.gather(*(store.grant(BUCKET, WINDOW, 3, 20) for _ in range(12)))
    assert sum(g.granted for g in grants) == 20
    assert await store.used(BUCKET, WINDOW) == 20


async def test_table_keeps_one_readable_row_per_bucket_and_window_length(azurite: Azurite) -> None:
    """A new window replaces the count of the last one in the same row: no rows of ended windows."""
    prefix = unique_prefix()
    store = counter_store(load({"GATEWAY_TABLES_CONNECTION": azurite.connection_string,
                                "GATEWAY_TABLE_PREFIX": prefix}))
    assert isinstance(store, TableCounters) and store.table_name == f"{prefix}limits"
    later = windows.key("day", time.time() + 2 * 86400)
    try:
        await store.grant(BUCKET, WINDOW, 4, 10)
        await store.grant(BUCKET, WINDOW, 4, 10)
        pk, rk = counter_keys(BUCKET, WINDOW)

        async def rows() -> list[tuple[str, str, str, str, int]]:
            return [(r["PartitionKey"], r["RowKey"], r["bucket"], r["window"], r["used"].value)
                    for r in await store._table.query()]

        assert await rows() == [(pk, rk, BUCKET, WINDOW, 8)]
        assert await store.grant(BUCKET, later, 3, 10) == Grant(3, 3)           # rollover: reset by CAS
        assert await rows() == [(pk, rk, BUCKET, later, 3)]
        assert await store.used(BUCKET, later) == 3
        assert await store.grant(BUCKET, WINDOW, 1, 10) == Grant(0, 10)   # a clock behind: nothing
        assert await store.used(BUCKET, WINDOW) == 0
    finally:
        await store.aclose()


@pytest.mark.parametrize("kind", ["table", "redis"])
async def test_an_unreachable_store_raises_counter_unavailable_naming_it(kind: str) -> None:
    dead = RedisServer()     # a free port nobody listens on
    nowhere = Azurite(Path("/nonexistent"), table_port=dead.port)
    env = ({"GATEWAY_TABLES_CONNECTION": nowhere.connection_string}
           if kind == "table" else
           {"GATEWAY_LIMITS_STORE": "redis", "GATEWAY_LIMITS_REDIS_URL": dead.url,
            "GATEWAY_DEV_ALLOW_HTTP_LOOPBACK": "true"})
    store = counter_store(load({**env, "GATEWAY_TABLE_PREFIX": "gw"}))
    try:
        with pytest.raises(CounterUnavailable) as raised:
            await store.grant(BUCKET, WINDOW, 1, 10)
        assert ("table gwlimits" if kind == "table" else "redis at 127.0.0.1") in str(raised.value)
        assert "AccountKey" not in str(raised.value) and BUCKET not in str(raised.value)
    finally:
        await store.aclose()


@pytest.mark.parametrize(("url", "loopback_allowed", "error"), [
    ("rediss://cache.westeurope.redis.azure.net:10000", False, None),
    ("redis://127.0.0.1:6379/0", True, None),
    ("redis://127.0.0.1:6379/0", False, "must be rediss://"),
    ("redis://cache.example.net:6379", True, "must be rediss://"),
    ("rediss://:secret@cache.westeurope.redis.azure.net:10000", False, "must not carry credentials"),
    ("rediss://user:pw@cache.westeurope.redis.azure.net:10000", False, "must not carry credentials"),
    ("http://cache.westeurope.redis.azure.net", False, "must be rediss://"),
    ("rediss://", False, "needs a host"),
])
def test_redis_address(url: str, loopback_allowed: bool, error: str | None) -> None:
    settings = load({"GATEWAY_LIMITS_STORE": "redis", "GATEWAY_LIMITS_REDIS_URL": url,
                     "GATEWAY_DEV_ALLOW_HTTP_LOOPBACK": str(loopback_allowed).lower()})
    if error is None:
        assert redis_address(settings) == (url, url.startswith("rediss:"))
        return
    with pytest.raises(SettingsError) as raised:
        counter_store(settings)
    assert error in str(raised.value) and "GATEWAY_LIMITS_REDIS_URL" in str(raised.value)
    assert "secret" not in str(raised.value) and "pw" not in str(raised.value)
