"""Leases: what admission sees (admitted or refused, what the counters hold), on every store, with an
injected clock; chunk sizing, background refills, rollover, settlement and the status snapshot."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import pytest

from shared.limits import windows
from shared.limits.counters import CounterStore, Grant, MemoryCounters
from shared.limits.leases import BucketUse, Leases

BUCKET = "per-user|user:okta/00u1|gpt-4o"


@dataclass
class Clock:
    now: float = (time.time() // 86400 + 1) * 86400 + 5    # tomorrow: a Redis key outlives the test

    def __call__(self) -> float:
        return self.now


@dataclass
class Recording:
    """A real in-memory store that remembers what it was asked (asked, minimum), in order."""
    inner: MemoryCounters = field(default_factory=MemoryCounters)
    asks: list[tuple[int, int]] = field(default_factory=list)

    async def grant(self, bucket: str, window: str, asked: int, limit: int, *, minimum: int = 1) -> Grant:
        self.asks.append((asked, minimum))
        return await self.inner.grant(bucket, window, asked, limit, minimum=minimum)

    async def used(self, bucket: str, window: str) -> int:
        return await self.inner.used(bucket, window)

    async def aclose(self) -> None:
        await self.inner.aclose()


async def settle() -> None:
    """Let background refills run (they are tasks on this loop)."""
    for _ in range(20):
        await asyncio.sleep(0)


async def test_admits_up_to_the_limit_then_refuses(store: CounterStore) -> None:
    clock = Clock()
    leases = Leases(store, clock=clock)
    results = [await leases.take(BUCKET, "minute", 1, 10) for _ in range(15)]
    assert results == [True] * 10 + [False] * 5
    assert await store.used(BUCKET, windows.key("minute", clock.now)) == 10
    await leases.aclose()


async def test_concurrent_takes_share_one_refill_and_never_pass_the_limit(store: CounterStore) -> None:
    leases = Leases(store, clock=Clock())
    results = await asyncio.gather(*(leases.take(BUCKET, "minute", 3, 100) for _ in range(50)))
    assert results.count(True) == 33 and results.count(False) == 17
    await leases.aclose()


async def test_rollover_starts_a_fresh_window(store: CounterStore) -> None:
    clock = Clock()
    leases = Leases(store, clock=clock)
    first = windows.key("minute", clock.now)
    assert [await leases.take(BUCKET, "minute", 2, 4) for _ in range(3)] == [True, True, False]
    assert await store.used(BUCKET, first) == 4
    clock.now += 60
    assert await leases.take(BUCKET, "minute", 2, 4)
    leases.give_back(BUCKET, "minute", 2, first)              # the old window's units lapse
    assert await leases.take(BUCKET, "minute", 2, 4)
    assert not await leases.take(BUCKET, "minute", 2, 4)
    assert await store.used(BUCKET, windows.key("minute", clock.now)) == 4
    await leases.aclose()


@pytest.mark.parametrize(("rate", "limit", "chunk"), [
    (10, 100_000, 1_000),       # at least a hundredth of the limit
    (400, 100_000, 2_000),      # five seconds of demand
    (1_000, 30_000, 3_000),     # at most a tenth of the limit
    (20, 600, 60),
])
async def test_refills_follow_demand_in_the_background(rate: int, limit: int, chunk: int) -> None:
    """Steady demand for 20 s: once warm, no request waits for the store, and the units this instance
    holds unspent (the counter less what it admitted) stay between half a chunk and one chunk."""
    clock, store = Clock(), Recording()
    leases = Leases(store, clock=clock)
    key = windows.key("minute", clock.now)
    admitted, waited, held = 0, 0, []
    for second in range(20):
        for _ in range(10):
            for _ in range(rate // 10):
                if leases.try_take(BUCKET, "minute", 1) is None:
                    waited += second >= 1
                    assert await leases.take(BUCKET, "minute", 1, limit)
                admitted += 1
            await settle()
            clock.now += 0.1
        if second >= 3:
            held.append(await store.used(BUCKET, key) - admitted)
    assert waited == 0
    assert chunk // 2 - rate // 10 <= min(held) and max(held) <= chunk * 1.1
    assert len(store.asks) <= 20 * rate / (chunk / 2) + 10          # not one store call per request
    await leases.aclose()


async def test_near_the_limit_a_refill_asks_for_exactly_what_is_needed() -> None:
    clock, store = Clock(), Recording()
    leases = Leases(store, clock=clock)
    admitted = 0
    while await leases.take(BUCKET, "minute", 7, 1000):
        admitted += 7
        clock.now += 0.01
        await settle()
    assert admitted == 994 and await store.used(BUCKET, windows.key("minute", clock.now)) == 994
    assert store.asks[-1] == (7, 7)             # the last grants: what one request needs, then none
    assert all(asked <= 7 for asked, _ in store.asks[-4:])
    assert len(store.asks) < 994 / 7 / 2        # while far from it, chunks of several requests
    await leases.aclose()


async def test_given_back_units_are_spent_again_without_the_store() -> None:
    clock, store = Clock(), Recording()
    leases = Leases(store, clock=clock)
    key = windows.key("minute", clock.now)
    assert await leases.take(BUCKET, "minute", 10, 10)
    leases.give_back(BUCKET, "minute", 4, key)
    assert leases.try_take(BUCKET, "minute", 4) is True
    assert leases.try_take(BUCKET, "minute", 1) is None or not await leases.take(BUCKET, "minute", 1, 10)
    assert await store.used(BUCKET, key) == 10
    await leases.aclose()


@pytest.mark.parametrize(("reserved", "overrun", "counter"), [
    (6, 3, 9),          # fits under the limit: charged in full
    (8, 5, 10),         # would pass the limit: charged up to it, the rest forgiven
    (10, 1, 10),
])
async def test_an_overrun_is_charged_but_never_past_the_limit(store: CounterStore, reserved: int,
                                                              overrun: int, counter: int) -> None:
    clock = Clock()
    leases = Leases(store, clock=clock)
    key = windows.key("minute", clock.now)
    assert await leases.take(BUCKET, "minute", reserved, 10)
    leases.charge(BUCKET, "minute", overrun, key, 10)
    await settle()
    await asyncio.gather(*leases._tasks)
    assert await store.used(BUCKET, key) == counter
    assert await leases.take(BUCKET, "minute", 1, 10) is (counter < 10)
    await leases.aclose()


async def test_an_overrun_of_an_ended_window_is_charged_to_that_window() -> None:
    clock, store = Clock(), MemoryCounters()
    leases = Leases(store, clock=clock)
    key = windows.key("minute", clock.now)
    assert await leases.take(BUCKET, "minute", 5, 10)
    clock.now += 60
    leases.charge(BUCKET, "minute", 20, key, 10)
    await settle()
    assert (await store.used(BUCKET, key), await store.used(BUCKET, windows.key("minute", clock.now))) == \
        (10, 0)


async def test_remaining_and_the_status_snapshot() -> None:
    clock, store = Clock(), MemoryCounters()
    leases = Leases(store, clock=clock)
    key = windows.key("minute", clock.now)
    assert leases.remaining(BUCKET, "minute") is None
    await store.grant(BUCKET, key, 80, 100)                   # other instances' grants
    assert await leases.take(BUCKET, "minute", 5, 100)
    assert await leases.take("quiet", "minute", 1, 100)
    assert leases.remaining(BUCKET, "minute") == 15
    used = await store.used(BUCKET, key)
    assert 85 <= used <= 90
    assert leases.snapshot() == [BucketUse(BUCKET, "minute", key, used, 100, store_down=False)]
    clock.now += 60
    assert leases.remaining(BUCKET, "minute") == 100 and leases.snapshot() == []
    await leases.aclose()
