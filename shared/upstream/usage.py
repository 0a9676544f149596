"""Token usage per principal, model and day: counted in memory on the request path, written to the
table `<prefix>usage` in batches off it.

Each process owns its rows (PartitionKey = UTC day, RowKey = sha256(principal, model) + this process's
random id) and only ever replaces them with its own running totals, so many processes never lose
each other's updates without transactions, and nothing is read back on the hot path. The raw
principal and model are properties (keys may hold neither `/` nor `#`). When storage is down the
counts stay in memory and the next flush writes them; a request never waits on storage.
`python -m shared usage` sums the rows of every process.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import logging
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..config.tables import Table
from ..telemetry import count_tokens

if TYPE_CHECKING:
    from azure.data.tables.aio import TableServiceClient

    from .outbound import Outbound

log = logging.getLogger("gateway.upstream.usage")

TABLE_SUFFIX = "usage"
FLUSH_SECONDS = 10.0
"""How often a process writes what it counted."""
CLOSE_FLUSH_SECONDS = 5.0
"""How long shutdown waits for the last flush."""
BATCH = 100
"""Entities per table transaction (the service's limit)."""
COUNTERS = ("requests", "prompt_tokens", "completion_tokens", "total_tokens")


@dataclass(slots=True)
class Counts:
    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0

    def add(self, other: Counts) -> None:
        self.requests += other.requests
        self.prompt_tokens += other.prompt_tokens
        self.completion_tokens += other.completion_tokens
        self.total_tokens += other.total_tokens


MAX_TOKENS = 1 << 32
"""More tokens than one request can use: a count this large is not believed (it would also overflow
the table's 64-bit counters once summed)."""


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < MAX_TOKENS \
        else 0


def counts_of(usage: Mapping[str, object] | None) -> Counts:
    """One request's counts from an OpenAI `usage` object (chat/completions/embeddings names, or the
    responses API's input/output names); a request without usage still counts as a request."""
    if not usage:
        return Counts(requests=1)
    prompt = _int(usage.get("prompt_tokens", usage.get("input_tokens")))
    completion = _int(usage.get("completion_tokens", usage.get("output_tokens")))
    total = _int(usage.get("total_tokens")) or prompt + completion
    return Counts(1, prompt, completion, total)


Key = tuple[str, str, str]  # (day, principal, model)


def row_key(principal: str, model: str, process: str) -> str:
    digest = hashlib.sha256(f"{principal}\n{model}".encode()).hexdigest()
    return f"{digest}-{process}"


_day: tuple[int, str] = (-1, "")


def _today() -> str:
    """The UTC day, as text: computed once a day, not once a request."""
    global _day
    number = int(time.time() // 86400)
    if number != _day[0]:
        _day = (number, dt.datetime.fromtimestamp(number * 86400, dt.UTC).date().isoformat())
    return _day[1]


class UsageRecorder:
    """`record` is a dictionary update; a background task flushes every FLUSH_SECONDS and at close."""

    def __init__(self, service_factory: Callable[[], TableServiceClient], prefix: str, *,
                 flush_seconds: float = FLUSH_SECONDS) -> None:
        self._factory = service_factory
        self._service: TableServiceClient | None = None
        self.table_name = f"{prefix}{TABLE_SUFFIX}"
        self._table_ready = False
        self.process = uuid.uuid4().hex[:16]
        self._flush_seconds = flush_seconds
        self._pending: dict[Key, Counts] = {}
        self._written: dict[Key, Counts] = {}
        self._lock: asyncio.Lock | None = None
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    def charge(self, out: Outbound, usage: Mapping[str, object] | None) -> None:
        """The usage sink of the forwarder: one answered request, in the table and in the metrics."""
        self.record(out.principal, out.model.name, usage)
        count_tokens(usage, identity=out.identity, model=out.model.name)

    def record(self, principal: str, model: str, usage: Mapping[str, object] | None) -> None:
        key = (_today(), principal, model)
        self._pending.setdefault(key, Counts()).add(counts_of(usage))
        if self._task is None and not self._closed:
            with contextlib.suppress(RuntimeError):  # no running loop: the next flush or close writes it
                self._task = asyncio.get_running_loop().create_task(self._run(), name="usage-flush")

    @property
    def pending(self) -> dict[Key, Counts]:
        return dict(self._pending)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._flush_seconds)
            await self.flush()

    async def _table(self) -> Table:
        if self._service is None:
            self._service = self._factory()
        table = Table(self._service.get_table_client(self.table_name))
        if not self._table_ready:
            await table.ensure()
            self._table_ready = True
        return table

    async def flush(self) -> bool:
        """Write every pending count; what cannot be written stays pending. True when nothing is left."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if not self._pending:
                return True
            batch, self._pending = self._pending, {}
            done: set[Key] = set()
            try:
                table = await self._table()
                days = sorted({day for day, _, _ in batch})
                for day in days:
                    keys = [k for k in batch if k[0] == day]
                    for start in range(0, len(keys), BATCH):
                        group = keys[start:start + BATCH]
                        totals = {}
                        for key in group:
                            total = Counts(**vars_of(self._written.get(key, Counts())))
                            total.add(batch[key])
                            totals[key] = total
                        await table.transaction(
                            [("upsert", self._entity(key, totals[key]), {"mode": _replace()})
                             for key in group])
                        self._written.update(totals)
                        done.update(group)
            except Exception as exc:
                for key, counts in batch.items():
                    if key not in done:
                        self._pending.setdefault(key, Counts()).add(counts)
                log.warning("usage: could not write %d count(s) to table %s, kept for the next flush "
                            "(%s)", len(batch) - len(done), self.table_name, type(exc).__name__)
                await self._drop_service()   # the next flush starts from a fresh client
                return False
            today = _today()
            self._written = {k: v for k, v in self._written.items() if k[0] >= _yesterday(today)}
            return not self._pending

    async def _drop_service(self) -> None:
        service, self._service, self._table_ready = self._service, None, False
        if service is not None:
            with contextlib.suppress(Exception):
                await service.close()

    def _entity(self, key: Key, counts: Counts) -> dict[str, Any]:
        from azure.data.tables import EdmType, EntityProperty

        day, principal, model = key
        return {"PartitionKey": day, "RowKey": row_key(principal, model, self.process),
                "principal": principal, "model": model, "process": self.process,
                **{name: EntityProperty(getattr(counts, name), EdmType.INT64) for name in COUNTERS}}

    async def aclose(self) -> None:
        self._closed = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        try:
            async with asyncio.timeout(CLOSE_FLUSH_SECONDS):
                await self.flush()
        except TimeoutError:
            log.warning("usage: gave up writing %d count(s) at shutdown", len(self._pending))
        await self._drop_service()


def vars_of(counts: Counts) -> dict[str, int]:
    return {name: getattr(counts, name) for name in COUNTERS}


def _replace() -> Any:
    from azure.data.tables import UpdateMode

    return UpdateMode.REPLACE


def _yesterday(day: str) -> str:
    return (dt.date.fromisoformat(day) - dt.timedelta(days=1)).isoformat()


# ---- reading: `python -m shared usage` ----------------------------------------------------------------

async def read_usage(service: TableServiceClient, prefix: str,
                     since: str | None = None) -> list[dict[str, Any]]:
    """Every process's rows summed per day, principal and model, sorted."""
    table = Table(service.get_table_client(f"{prefix}{TABLE_SUFFIX}"))
    sums: dict[Key, Counts] = {}
    entities = await (table.query("PartitionKey ge @since", {"since": since}) if since else table.query())
    for e in entities:
        key = (e["PartitionKey"], str(e.get("principal", "")), str(e.get("model", "")))
        sums.setdefault(key, Counts()).add(Counts(**{n: _int(getattr(e.get(n), "value", e.get(n)))
                                                      for n in COUNTERS}))
    return [{"day": day, "principal": principal, "model": model, **vars_of(c)}
            for (day, principal, model), c in sorted(sums.items())]
