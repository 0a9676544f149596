"""The counter store goes down mid-run (its server is stopped) and comes back: rate limits keep
admitting at the last known rate, budgets deny or allow as their flag says, nothing raises, and what
was admitted meanwhile is charged once the store answers again."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from sandbox.azurite import Azurite
from shared.limits import windows
from shared.limits.counters import CounterStore
from shared.limits.leases import RETRY_SECONDS, Leases
from shared.limits.redis_counters import RedisCounters
from shared.limits.table_counters import TableCounters
from shared.settings import Settings, load
from tests.harness import unique_prefix
from tests.limits.conftest import RedisServer, open_store, redis_env, table_env
from tests.limits.test_leases import Clock, settle

LIMIT = 600                 # per minute: its own pace is 10 a second, under the demand below
WARM_RATE = 20              # units a second before the outage: the last known rate
DOWN_RATE = 100             # units a second asked for while the store is down
RATE, DENY, ALLOW = "rate", "budget-deny", "budget-allow"
FAIL_OPEN = {RATE: True, DENY: False, ALLOW: True}


async def admit(leases: Leases, bucket: str, amount: int) -> bool:
    taken = leases.try_take(bucket, "minute", amount, fail_open=FAIL_OPEN[bucket])
    if taken is None:
        taken = await leases.take(bucket, "minute", amount, LIMIT, fail_open=FAIL_OPEN[bucket])
    return taken


async def run(leases: Leases, clock: Clock, rate: int, seconds: int) -> dict[str, int]:
    admitted = dict.fromkeys(FAIL_OPEN, 0)
    for _ in range(seconds * 10):
        for _ in range(rate // 10):
            for bucket in FAIL_OPEN:
                admitted[bucket] += await admit(leases, bucket, 1)
        await settle()
        clock.now += 0.1
    return admitted


async def refilled(leases: Leases) -> None:
    """Wait until no refill is in flight: until then the counter holds grants the lease has not
    received yet (or the lease holds units the counter is still writing)."""
    while leases._tasks:
        await asyncio.gather(*leases._tasks)


def unretried(kind: str, settings: Settings) -> CounterStore:
    """The store with its usual timeout, on a client that does not retry a refused connection: a dead
    loopback server is known dead at once (the Table SDK's own retries would take seconds), while a
    live one that a busy machine slows down still has the whole timeout to answer."""
    if kind == "redis":
        return RedisCounters.from_settings(settings)        # one immediate retry, no pause
    from azure.data.tables.aio import TableServiceClient

    service = TableServiceClient.from_connection_string(settings.tables_connection, retry_total=0)
    return TableCounters(service, settings.table_prefix)


@pytest.mark.parametrize("kind", ["table", "redis"])
async def test_a_store_outage(kind: str, request: pytest.FixtureRequest) -> None:
    server: Any = request.getfixturevalue("own_azurite" if kind == "table" else "own_redis")
    env = table_env(server, unique_prefix()) if isinstance(server, Azurite) else \
        redis_env(server, unique_prefix())
    store = unretried(kind, load(env))
    clock = Clock()
    key = windows.key("minute", clock.now)
    leases = Leases(store, clock=clock)

    before = await run(leases, clock, WARM_RATE, 10)
    assert before == dict.fromkeys(FAIL_OPEN, 10 * WARM_RATE)
    await refilled(leases)      # a refill still in flight would land after `held` is read
    held = {bucket: await store.used(bucket, key) - before[bucket] for bucket in FAIL_OPEN}
    assert all(0 <= units <= LIMIT // 10 for units in held.values())

    server.stop()
    during = await run(leases, clock, DOWN_RATE, 10)
    assert during[DENY] == held[DENY]                       # its lease, then nothing
    for bucket in (RATE, ALLOW):                            # its lease, then the last known pace
        assert 10 * WARM_RATE <= during[bucket] <= held[bucket] + 11 * WARM_RATE + LIMIT // 10
    assert {u.bucket for u in leases.snapshot() if u.store_down} == set(FAIL_OPEN)

    await refilled(leases)      # the last attempt on the dead server has ended
    server.start()
    clock.now += RETRY_SECONDS
    for bucket in FAIL_OPEN:
        await admit(leases, bucket, 1)
    await refilled(leases)
    assert not any(u.store_down for u in leases.snapshot())
    assert await store.used(RATE, key) >= during[RATE] - held[RATE]     # what was admitted on credit
    await leases.aclose()
    await store.aclose()


async def test_a_store_down_from_the_start_admits_at_the_limits_own_pace(
        own_redis: RedisServer) -> None:
    own_redis.stop()
    store = open_store(redis_env(own_redis, unique_prefix()))
    clock = Clock()
    leases = Leases(store, clock=clock)
    admitted = await run(leases, clock, DOWN_RATE, 5)
    assert admitted[DENY] == 0
    burst = max(1, LIMIT // 100)             # one chunk, at least a hundredth of the limit
    assert 5 * LIMIT // 60 - 2 <= admitted[RATE] <= 5 * LIMIT // 60 + burst + 2
    await leases.aclose()
    await store.aclose()
