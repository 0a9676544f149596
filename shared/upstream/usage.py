"""Token usage and its cost per principal, identity, model and day: counted in memory on the request
path, priced and written to the table `<prefix>usage` in batches off it.

Each process owns its rows (PartitionKey = UTC day, RowKey = sha256(principal, identity, model) + this
process's random id) and only ever replaces them with its own running totals, so many processes never
lose each other's updates without transactions, and nothing is read back on the hot path. The raw
principal, identity and model are properties (keys may hold neither `/` nor `#`). When storage is down
the counts stay in memory and the next flush writes them; a request never waits on storage.

Cost is computed at flush, for what was counted since the last one, with the price in force on the
row's day (shared/limits/prices.py): uncached prompt tokens at the input price, cached ones
(`prompt_tokens_details.cached_tokens`, `input_tokens_details.cached_tokens`) at the cached price,
output at the output price, in micro-USD rounded up. A model without a price adds its requests to
`unpriced_requests`, so a report can say its cost is unknown rather than zero. Images, audio seconds and
speech characters are counted beside tokens (media_usage says from what); a row written before they
were counted reads them as zero.
`python -m shared usage` and `GET /manage/usage` sum the rows of every process.
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
from ..limits.prices import PriceBook, Rate
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
COUNTERS = ("requests", "prompt_tokens", "cached_tokens", "completion_tokens", "total_tokens",
            "cost_micro_usd", "unpriced_requests", "images", "audio_seconds", "speech_characters")


@dataclass(slots=True)
class Counts:
    requests: int = 0
    prompt_tokens: int = 0
    cached_tokens: int = 0           # of prompt_tokens, those the upstream read from its cache
    completion_tokens: int = 0
    total_tokens: int = 0
    cost_micro_usd: int = 0          # set when priced, at flush
    unpriced_requests: int = 0       # requests of a model with no price (their cost is unknown)
    images: int = 0                  # images generated or edited (media_usage says what is counted)
    audio_seconds: int = 0           # audio transcribed or translated, whole seconds per request
    speech_characters: int = 0       # characters of text spoken

    def add(self, other: Counts) -> None:
        for name in COUNTERS:
            setattr(self, name, getattr(self, name) + getattr(other, name))


MAX_TOKENS = 1 << 32
"""More tokens than one request can use: a count this large is not believed (it would also overflow
the table's 64-bit counters once summed)."""


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < MAX_TOKENS \
        else 0


def counts_of(usage: Mapping[str, object] | None) -> Counts:
    """One request's counts from an OpenAI `usage` object (chat/completions/embeddings names, or the
    responses API's input/output names, with the members media_usage adds for images and audio); a
    request without usage still counts as a request."""
    if not usage:
        return Counts(requests=1)
    prompt = _int(usage.get("prompt_tokens", usage.get("input_tokens")))
    completion = _int(usage.get("completion_tokens", usage.get("output_tokens")))
    total = _int(usage.get("total_tokens")) or prompt + completion
    details = usage.get("prompt_tokens_details", usage.get("input_tokens_details"))
    cached = min(_int(details.get("cached_tokens")), prompt) if isinstance(details, dict) else 0
    return Counts(1, prompt, cached, completion, total, images=_int(usage.get("images")),
                  audio_seconds=_int(usage.get("seconds")), speech_characters=_int(usage.get("characters")))


def priced(counts: Counts, rate: Rate | None) -> Counts:
    """`counts` with their cost (or, without a rate, their requests counted as unpriced)."""
    out = Counts(**vars_of(counts))
    if rate is not None:
        out.cost_micro_usd += PriceBook.micro_usd(rate, counts.prompt_tokens, counts.completion_tokens,
                                                  counts.cached_tokens)
    else:
        out.unpriced_requests += counts.requests
    return out


Key = tuple[str, str, str, str]  # (day, principal, identity, model)


def row_key(principal: str, identity: str, model: str, process: str) -> str:
    digest = hashlib.sha256(f"{principal}\n{identity}\n{model}".encode()).hexdigest()
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
                 flush_seconds: float = FLUSH_SECONDS,
                 prices: Callable[[], PriceBook] = lambda: PriceBook(())) -> None:
        self._factory = service_factory
        self._prices = prices               # the current configuration's prices, read at each flush
        self._service: TableServiceClient | None = None
        self.table_name = f"{prefix}{TABLE_SUFFIX}"
        self._prefix = prefix
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
        self.record(out.principal, out.model.name, usage, identity=out.identity)
        count_tokens(usage, identity=out.identity, model=out.model.name)

    def charge_later(self, principal: str, model: str, usage: Mapping[str, object] | None) -> None:
        """Usage known after its request was answered (a batch's, once it finished): in the table and
        in the metrics, charged to `principal` without an identity."""
        self.record(principal, model, usage)
        count_tokens(usage, identity="", model=model)

    def record(self, principal: str, model: str, usage: Mapping[str, object] | None, *,
               identity: str = "") -> None:
        key = (_today(), principal, identity, model)
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
            counted, self._pending = self._pending, {}
            done: set[Key] = set()
            try:
                batch = await asyncio.to_thread(self._priced, counted)   # may load the price table
                table = await self._table()
                days = sorted({key[0] for key in batch})
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
                for key, counts in counted.items():   # unpriced: the next flush prices them once
                    if key not in done:
                        self._pending.setdefault(key, Counts()).add(counts)
                log.warning("usage: could not write %d count(s) to table %s, kept for the next flush "
                            "(%s)", len(counted) - len(done), self.table_name, type(exc).__name__)
                await self._drop_service()   # the next flush starts from a fresh client
                return False
            today = _today()
            self._written = {k: v for k, v in self._written.items() if k[0] >= _yesterday(today)}
            return not self._pending

    def _priced(self, batch: dict[Key, Counts]) -> dict[Key, Counts]:
        """The batch with its cost, each row at the price of its day (a price is looked up once per
        model and day)."""
        book = self._prices()
        rates: dict[tuple[str, str], Rate | None] = {}
        out = {}
        for key, counts in batch.items():
            day, model = key[0], key[3]
            if (day, model) not in rates:
                rates[(day, model)] = _rate(book, model, day)
            out[key] = priced(counts, rates[(day, model)])
        return out

    async def _drop_service(self) -> None:
        service, self._service, self._table_ready = self._service, None, False
        if service is not None:
            with contextlib.suppress(Exception):
                await service.close()

    def _entity(self, key: Key, counts: Counts) -> dict[str, Any]:
        from azure.data.tables import EdmType, EntityProperty

        day, principal, identity, model = key
        return {"PartitionKey": day, "RowKey": row_key(principal, identity, model, self.process),
                "principal": principal, "identity": identity, "model": model, "process": self.process,
                **{name: EntityProperty(getattr(counts, name), EdmType.INT64) for name in COUNTERS}}

    async def read(self, since: str | None = None, until: str | None = None) -> list[dict[str, Any]]:
        """Every process's rows (`read_usage`), after writing this process's pending counts."""
        await self.flush()
        if self._service is None:
            self._service = self._factory()
        return await read_usage(self._service, self._prefix, since, until)

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


def _rate(book: PriceBook, model: str, day: str) -> Rate | None:
    """A failing price lookup leaves the usage unpriced; it never keeps the counts from being written."""
    try:
        return book.rate(model, now=_noon(day))
    except Exception:
        log.exception("usage: could not price model %r; its usage is recorded as unpriced", model)
        return None


def _noon(day: str) -> float:
    return dt.datetime.fromisoformat(day).replace(hour=12, tzinfo=dt.UTC).timestamp()


def _yesterday(day: str) -> str:
    return (dt.date.fromisoformat(day) - dt.timedelta(days=1)).isoformat()


# ---- reading: `python -m shared usage`, `GET /manage/usage` ---------------------------------------

GROUPS = {"day": "day", "user": "principal", "principal": "principal", "identity": "identity",
          "model": "model"}
"""Names to group by and the row member each groups by (a principal is the caller's user)."""
REPORTED = ("requests", "prompt_tokens", "cached_tokens", "completion_tokens", "total_tokens", "cost_usd",
            "unpriced_requests", "images", "audio_seconds", "speech_characters")
"""What a report gives per group: `cost_usd` is a lower bound when `unpriced_requests` is not zero."""


async def read_usage(service: TableServiceClient, prefix: str, since: str | None = None,
                     until: str | None = None) -> list[dict[str, Any]]:
    """Every process's rows summed per day, principal, identity and model, sorted; `since` and `until`
    are UTC days, both included."""
    table = Table(service.get_table_client(f"{prefix}{TABLE_SUFFIX}"))
    clauses = [c for c, v in (("PartitionKey ge @since", since), ("PartitionKey le @until", until)) if v]
    params = {k: v for k, v in (("since", since), ("until", until)) if v}
    entities = await (table.query(" and ".join(clauses), params) if clauses else table.query())
    sums: dict[Key, Counts] = {}
    for e in entities:
        key = (e["PartitionKey"], str(e.get("principal", "")), str(e.get("identity", "")),
               str(e.get("model", "")))
        sums.setdefault(key, Counts()).add(Counts(**{n: _int(getattr(e.get(n), "value", e.get(n)))
                                                      for n in COUNTERS}))
    return [{"day": day, "principal": principal, "identity": identity, "model": model, **vars_of(c)}
            for (day, principal, identity, model), c in sorted(sums.items())]


def group(rows: list[dict[str, Any]], keys: tuple[str, ...]) -> list[dict[str, Any]]:
    """Rows summed per distinct value of `keys` (row members), sorted by them, with cost in USD."""
    sums: dict[tuple[str, ...], dict[str, Any]] = {}
    for row in rows:
        key = tuple(str(row[k]) for k in keys)
        total = sums.setdefault(key, {**dict(zip(keys, key, strict=True)), **dict.fromkeys(COUNTERS, 0)})
        for name in COUNTERS:
            total[name] += row[name]
    out = []
    for key in sorted(sums):
        total = sums[key]
        total["cost_usd"] = total.pop("cost_micro_usd") / 1_000_000
        out.append({**{k: total[k] for k in keys}, **{n: total[n] for n in REPORTED}})
    return out
