"""The shared counters every instance draws its leases from: one per bucket and window.

Amounts are integers: requests, tokens, or micro-USD for budgets. `grant` is the only write: it adds
as much of `asked` as keeps the counter at or under `limit`, atomically (an ETag compare-and-set on
Table Storage, a script on Redis), so however many instances ask at once, the grants of one window
never sum past its limit. `window` is a window key (`windows.key`): on Table Storage the first grant of
a new window replaces the last one's count by the same compare-and-set (one row per bucket and window
length, no rows of ended windows), on Redis each window's key expires after it. Implementations:
`MemoryCounters` (one process: tests, and a gateway without shared storage), Table Storage and Redis
(docs/limits.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


class CounterUnavailable(Exception):
    """The store could not be reached or did not answer in time; the message names the store, never a
    credential."""


@dataclass(frozen=True, slots=True)
class Grant:
    granted: int       # what this call obtained: 0 <= granted <= asked
    used: int          # the counter after the grant: every instance's grants in this window


class CounterStore(Protocol):
    async def grant(self, bucket: str, window: str, asked: int, limit: int, *,
                    minimum: int = 1) -> Grant:
        """Add min(asked, limit - used) to the counter of (bucket, window) if that is at least
        `minimum`, else add nothing; `window` is a window key. Raises CounterUnavailable."""
        ...

    async def used(self, bucket: str, window: str) -> int:
        """The counter as it stands (0 when it does not exist). Raises CounterUnavailable."""
        ...

    async def aclose(self) -> None:
        ...


class MemoryCounters:
    """Counters in this process's memory: exact for one process, shared by nothing else."""

    def __init__(self) -> None:
        self._counts: dict[tuple[str, str], int] = {}

    async def grant(self, bucket: str, window: str, asked: int, limit: int, *, minimum: int = 1) -> Grant:
        used = self._counts.get((bucket, window), 0)
        granted = min(asked, max(0, limit - used))
        if granted < minimum:
            return Grant(0, used)
        self._counts[(bucket, window)] = used + granted
        return Grant(granted, used + granted)

    async def used(self, bucket: str, window: str) -> int:
        return self._counts.get((bucket, window), 0)

    async def aclose(self) -> None:
        self._counts.clear()
