"""Each instance's local share of every bucket it serves: admission spends it without I/O.

A lease is a number of units (requests, tokens or micro-USD) this process obtained from the shared
counter of one bucket and window (`counters.CounterStore.grant`). `try_take` spends from it with no
I/O. When the balance falls under a low-water mark, one refill per lease runs in the background
(single flight: a task, never a lock held across I/O), so a warm lease never makes a request wait.
A refill tops the balance up to a chunk sized to recent demand (DEMAND_SECONDS of it), at most
MAX_FRACTION of the limit; near the limit the chunk shrinks with the room left, down to exactly what
waiting requests need. The store
never grants past the limit, so the grants of a window never sum past it; units leased but unspent
when the window ends lapse, so the only error is under-admission, bounded by the leases outstanding
at the window's end: at most the sum over instances of max(largest request, min(limit x
MAX_FRACTION, demand x DEMAND_SECONDS)) (docs/limits.md).

Settlement: `give_back` returns reserved units that were not used; `charge` takes units used beyond
a reservation (an overrun) from the balance, and charges whatever the balance cannot cover to the
counter only as far as the limit leaves room, so the grants never exceed the limit; the rest of an
overrun is forgiven (the bound: a window's consumption exceeds its limit by at most its forgiven
overruns, none when reservations bound usage).

When the store cannot be reached, no CounterUnavailable leaves this module: `take(fail_open=True)`
(rate limits; budgets set to allow) keeps admitting from the balance plus the last known rate (the
recent demand, at least the limit's own average pace, plus one chunk of burst, never more than the
limit per window on this instance); `fail_open=False` (budgets set to deny) admits only what the
balance holds. The store is retried in the background every RETRY_SECONDS; once it answers, what was
admitted meanwhile is charged to the counter (again never past the limit).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from . import windows
from .counters import CounterStore, CounterUnavailable, Grant

log = logging.getLogger("gateway.limits.leases")

MAX_FRACTION = 0.1          # a chunk is at most this share of the limit
MIN_FRACTION = 0.01         # and at least this share (far from the limit), so a bucket with little demand
                            # (one user's among thousands) is not refilled for every few requests
DEMAND_SECONDS = 5.0        # a chunk covers about this many seconds of recent demand
DEMAND_HORIZON = 30.0       # demand older than about this is forgotten (halved at each horizon)
LOW_WATER = 0.5             # refill in the background once the balance falls under this share of a chunk
NEAR_CHUNKS = 2             # within this many chunks of the limit, chunks shrink with the room left:
NEAR_SHARE = 0.125          # to this share of it, and at last to exactly what a request needs
RETRY_SECONDS = 1.0         # while the store is down, try it again at most this often


@dataclass(slots=True)
class Lease:
    unit: str                           # the window: minute, hour, day or month
    window: str                         # the window key the units belong to
    limit: int = 0                      # the limit the last `take` named (0: never taken yet)
    balance: int = 0                    # units held here, not yet spent
    used: int = 0                       # the counter as the store last reported it (every instance)
    short_of: int = 0                   # a grant of this many was refused: the window has less room
    chunk: int = 0                      # the size of the last refill asked for
    demand: float = 0.0                 # units spent since `demand_since` (for the chunk size)
    demand_since: float = 0.0
    waiting: int = 0                    # units that requests awaiting a refill need
    spent: int = 0                      # units this instance admitted in this window
    owed: int = 0                       # units admitted beyond its grants, to charge to the counter
    down_since: float | None = None     # the store failed then, and has not answered since
    down_rate: float = 0.0              # units per second admitted while it is down (fail open)
    down_spent: int = 0
    retry_at: float = 0.0
    sync: asyncio.Task[None] | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class BucketUse:
    """One bucket's counter as this instance last saw it: what /manage/status lists."""
    bucket: str
    window: str             # minute, hour, day or month
    window_key: str
    used: int
    limit: int
    store_down: bool


class Leases:
    def __init__(self, store: CounterStore, *, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.clock = clock
        self._leases: dict[tuple[str, str], Lease] = {}    # (bucket, window unit) -> lease
        self._tasks: set[asyncio.Task[Any]] = set()

    # -- admission ---------------------------------------------------------------------------------

    def try_take(self, bucket: str, window: str, amount: int, *, fail_open: bool = False) -> bool | None:
        """Spend `amount` from the local lease, with no I/O: True when admitted, False when refused
        (the window's limit is reached, or the store is down and `fail_open` does not admit it), None
        when a refill is needed first (`take`)."""
        now = self.clock()
        lease = self._lease(bucket, window, now)
        if lease.balance >= amount:
            lease.balance -= amount
            self._spend(lease, amount, now)
            self._prefill(bucket, lease, now)
            return True
        if lease.short_of and amount - lease.balance >= lease.short_of:
            return False
        if lease.down_since is not None:
            self._retry(bucket, lease, now)
            return self._take_while_down(lease, amount, now, fail_open)
        return None

    def is_down(self, bucket: str, window: str) -> bool:
        """The store did not answer this bucket's last refill and has not answered since."""
        lease = self._leases.get((bucket, window))
        return lease is not None and lease.down_since is not None

    async def take(self, bucket: str, window: str, amount: int, limit: int, *,
                   fail_open: bool = False) -> bool:
        """`try_take`, refilling first when needed; never raises CounterUnavailable."""
        while True:
            self._lease(bucket, window, self.clock()).limit = limit
            taken = self.try_take(bucket, window, amount, fail_open=fail_open)
            if taken is not None:
                return taken
            lease = self._lease(bucket, window, self.clock())
            lease.waiting += amount
            try:
                await asyncio.shield(self._sync(bucket, lease, amount - lease.balance))
            finally:
                lease.waiting -= amount

    def _take_while_down(self, lease: Lease, amount: int, now: float, fail_open: bool) -> bool:
        if not fail_open:
            return False
        # the limit's own pace since the store went down, plus a burst of one chunk (at least this
        # request, so a store down from the start still admits at that pace)
        paced = lease.down_rate * (now - (lease.down_since or now)) + max(lease.chunk, amount, 1)
        if amount > paced - lease.down_spent or lease.spent + amount > lease.limit:
            return False
        beyond = amount - lease.balance
        lease.balance = 0
        lease.down_spent += beyond
        lease.owed += beyond
        self._spend(lease, amount, now)
        return True

    # -- settlement --------------------------------------------------------------------------------

    def give_back(self, bucket: str, window: str, amount: int, window_key: str) -> None:
        """Units reserved but not used return to the lease, if their window is still the current one."""
        lease = self._leases.get((bucket, window))
        if lease is None or lease.window != window_key or amount <= 0:
            return
        unowed = min(lease.owed, amount)        # units admitted on credit are returned first
        lease.owed -= unowed
        lease.down_spent = max(0, lease.down_spent - unowed)
        lease.balance += amount - unowed
        lease.spent = max(0, lease.spent - amount)
        lease.demand = max(0.0, lease.demand - amount)

    def charge(self, bucket: str, window: str, amount: int, window_key: str, limit: int) -> None:
        """Units used beyond a reservation: from the balance, else charged to the counter in the
        background as far as the limit leaves room (never past it)."""
        if amount <= 0:
            return
        now = self.clock()
        lease = self._leases.get((bucket, window))
        if lease is None or lease.window != window_key:      # its window has ended: charge that one
            self._background(self._charge_past(bucket, window_key, amount, limit))
            return
        covered = min(lease.balance, amount)
        lease.balance -= covered
        lease.owed += amount - covered
        self._spend(lease, amount, now)
        if lease.owed and lease.down_since is None:
            self._sync(bucket, lease, 0)

    async def _charge_past(self, bucket: str, window_key: str, amount: int, limit: int) -> None:
        with contextlib.suppress(CounterUnavailable):
            await self.store.grant(bucket, window_key, amount, limit)

    # -- what the headers and /manage/status read --------------------------------------------------

    def remaining(self, bucket: str, window: str) -> int | None:
        """An estimate of what the window has left for every instance: the limit less the counter as
        last read, where this instance's unspent balance still counts as left (None before the first
        `take`)."""
        lease = self._leases.get((bucket, window))
        if lease is None or not lease.limit:
            return None
        if lease.window != windows.key(window, self.clock()):     # a new window: nothing seen used yet
            return lease.limit
        return max(0, lease.limit - max(0, lease.used - lease.balance) - lease.owed)

    def snapshot(self, *, near: float = 0.8) -> list[BucketUse]:
        """The current windows whose counter is at `near` of their limit or more, or whose store is
        down, most used first."""
        now = self.clock()
        out = [BucketUse(bucket, unit, lease.window, lease.used + lease.owed, lease.limit,
                         lease.down_since is not None)
               for (bucket, unit), lease in self._leases.items()
               if lease.limit and lease.window == windows.key(unit, now)
               and (lease.used + lease.owed >= near * lease.limit or lease.down_since is not None)]
        return sorted(out, key=lambda u: (-(u.used / u.limit), u.bucket, u.window))

    # -- leases and their refills ------------------------------------------------------------------

    def _lease(self, bucket: str, window: str, now: float) -> Lease:
        current = windows.key(window, now)
        lease = self._leases.get((bucket, window))
        if lease is None:
            lease = self._leases[(bucket, window)] = Lease(unit=window, window=current, demand_since=now)
        elif lease.window != current:       # rollover: the old lease's units lapse, its pace carries on
            lease = self._leases[(bucket, window)] = Lease(
                unit=window, window=current, limit=lease.limit, chunk=lease.chunk, demand=lease.demand,
                demand_since=lease.demand_since, down_since=None if lease.down_since is None else now,
                down_rate=lease.down_rate, retry_at=lease.retry_at)
        return lease

    def _spend(self, lease: Lease, amount: int, now: float) -> None:
        lease.spent += amount
        lease.demand += amount
        if now - lease.demand_since > DEMAND_HORIZON:     # keep demand recent: halve the history
            lease.demand /= 2
            lease.demand_since = now - DEMAND_HORIZON / 2

    def _rate(self, lease: Lease, now: float) -> float:
        return lease.demand / max(now - lease.demand_since, 1.0)

    def _chunk(self, lease: Lease, now: float) -> int:
        """The units a lease should hold: recent demand, between a hundredth and a tenth of the limit.
        Near the limit it shrinks with the room left (a NEAR_SHARE of it), down to nothing."""
        cap = max(1, int(lease.limit * MAX_FRACTION))
        floor = max(1, int(lease.limit * MIN_FRACTION))
        chunk = min(max(int(self._rate(lease, now) * DEMAND_SECONDS), floor), cap)
        room = lease.limit - lease.used
        return min(chunk, int(room * NEAR_SHARE)) if room < NEAR_CHUNKS * chunk else chunk

    def _asked(self, lease: Lease, chunk: int, need: int) -> int:
        """What a refill asks for: the balance topped up to a chunk, or what waiting requests need."""
        return max(chunk - lease.balance, need, lease.waiting - lease.balance, 0)

    def _prefill(self, bucket: str, lease: Lease, now: float) -> None:
        """Start a background refill once the balance runs low, unless a refill is already running or
        there is nothing worth asking for (the window's room is gone, or nearly)."""
        if (lease.limit and lease.down_since is None and not lease.short_of
                and lease.balance < LOW_WATER * lease.chunk
                and self._asked(lease, self._chunk(lease, now), 0) > 0):
            self._sync(bucket, lease, 0)

    def _retry(self, bucket: str, lease: Lease, now: float) -> None:
        if now >= lease.retry_at:
            lease.retry_at = now + RETRY_SECONDS
            self._sync(bucket, lease, 0)

    def _sync(self, bucket: str, lease: Lease, need: int) -> asyncio.Task[None]:
        """The lease's one refill task: started when none is running, else the running one."""
        if lease.sync is None or lease.sync.done():
            lease.sync = self._background(self._refill(bucket, lease, need))
        return lease.sync

    async def _refill(self, bucket: str, lease: Lease, need: int) -> None:
        """Charge what is owed, then ask for a chunk (or, with nothing to ask, read the counter: a
        retry must still learn whether the store answers); a store failure marks the lease down."""
        try:
            grant: Grant | None = None
            if lease.owed:
                owed = lease.owed
                grant = Grant(0, (await self.store.grant(bucket, lease.window, owed, lease.limit)).used)
                lease.owed -= owed          # what the limit left no room for is forgiven
                lease.used = max(lease.used, grant.used)
            lease.chunk = self._chunk(lease, self.clock())
            asked = self._asked(lease, lease.chunk, need)
            if asked > 0:
                grant = await self.store.grant(bucket, lease.window, asked, lease.limit,
                                               minimum=max(1, min(need, asked)))
            elif grant is None:
                grant = Grant(0, await self.store.used(bucket, lease.window))
        except CounterUnavailable as exc:
            self._went_down(lease, str(exc))
            return
        except Exception as exc:    # a store's unexpected error must not fail admission either
            log.exception("limits: the counter store failed unexpectedly")
            self._went_down(lease, f"the counter store failed ({type(exc).__name__})")
            return
        if lease.down_since is not None:
            log.warning("limits: the counter store answers again; leases are shared again")
        lease.down_since, lease.down_spent = None, 0
        lease.used = max(lease.used, grant.used)
        lease.balance += grant.granted
        if asked > 0 and grant.granted == 0:
            shortfall = max(1, min(need, asked))
            lease.short_of = min(lease.short_of or shortfall, shortfall)

    def _went_down(self, lease: Lease, why: str) -> None:
        now = self.clock()
        lease.retry_at = now + RETRY_SECONDS
        if lease.down_since is not None:
            return
        lease.down_since = now
        lease.down_spent = 0
        lease.down_rate = max(self._rate(lease, now), lease.limit / windows.length(lease.unit))
        log.warning("limits: %s; admitting from local leases (%s window)", why, lease.unit)

    def _background(self, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def aclose(self) -> None:
        """Stop the refills in flight (their units lapse, as at any window's end)."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*list(self._tasks), return_exceptions=True)
