"""Each instance's local share of every bucket it serves: admission spends it without I/O.

A lease is a number of units (requests, tokens or micro-USD) this process obtained from the shared
counter of one bucket and window (`counters.CounterStore.grant`). `try_take` spends from it with no
I/O; when it runs short, one refill per lease is in flight at a time (single flight), asking for a
chunk sized to recent demand, never more than a tenth of the limit, and only what the request needs
once the counter is near the limit, so the grants of a window never exceed its limit. Units leased
but unspent when the window ends are lost: the only error is under-admission, bounded by the leases
outstanding at the window's end (docs/limits.md).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from . import windows
from .counters import CounterStore, CounterUnavailable

log = logging.getLogger("gateway.limits.leases")

MAX_FRACTION = 0.1          # a chunk is at most this share of the limit
DEMAND_SECONDS = 5.0        # a chunk covers about this many seconds of recent demand


@dataclass(slots=True)
class Lease:
    window: str                         # the window key the units belong to
    balance: int = 0                    # units held here, not yet spent
    exhausted: bool = False             # the counter refused a grant: the window's limit is reached
    spent: int = 0                      # units spent from this lease (demand, for the chunk size)
    started: float = 0.0
    refill: asyncio.Task[None] | None = field(default=None, repr=False)


class Leases:
    def __init__(self, store: CounterStore, *, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.clock = clock
        self._leases: dict[tuple[str, str], Lease] = {}    # (bucket, window unit) -> lease

    def _lease(self, bucket: str, window: str) -> Lease:
        current = windows.key(window, self.clock())
        lease = self._leases.get((bucket, window))
        if lease is None or lease.window != current:        # rollover: the old lease's units lapse
            lease = self._leases[(bucket, window)] = Lease(window=current, started=self.clock())
        return lease

    def try_take(self, bucket: str, window: str, amount: int) -> bool | None:
        """Spend `amount` from the local lease: True when it held enough, False when the window's
        limit is known to be reached, None when a refill is needed first (`take`)."""
        lease = self._lease(bucket, window)
        if lease.balance >= amount:
            lease.balance -= amount
            lease.spent += amount
            return True
        return False if lease.exhausted else None

    async def take(self, bucket: str, window: str, amount: int, limit: int) -> bool:
        """`try_take`, refilling first when needed. Raises CounterUnavailable when the store fails."""
        while True:
            taken = self.try_take(bucket, window, amount)
            if taken is not None:
                return taken
            lease = self._lease(bucket, window)
            if lease.refill is None or lease.refill.done():
                lease.refill = asyncio.ensure_future(self._refill(bucket, lease, amount, limit))
            await asyncio.shield(lease.refill)

    def give_back(self, bucket: str, window: str, amount: int, window_key: str) -> None:
        """Units reserved but not used return to the lease, if their window is still the current one."""
        lease = self._leases.get((bucket, window))
        if lease is not None and lease.window == window_key and amount > 0:
            lease.balance += amount
            lease.spent -= amount

    def _chunk(self, lease: Lease, amount: int, limit: int) -> int:
        elapsed = max(self.clock() - lease.started, 1.0)
        demand = int(lease.spent / elapsed * DEMAND_SECONDS)
        return max(amount, min(demand, int(limit * MAX_FRACTION)))

    async def _refill(self, bucket: str, lease: Lease, amount: int, limit: int) -> None:
        needed = amount - lease.balance
        try:
            grant = await self.store.grant(bucket, lease.window, self._chunk(lease, needed, limit), limit,
                                           minimum=needed)
        except CounterUnavailable:
            raise
        if grant.granted == 0:
            lease.exhausted = True
        lease.balance += grant.granted
