"""The remote-call records kept in the table `<prefix>remotecalls`: written off the request path, read
back for `GET /manage/remote-calls` and `python -m shared usage --calls`.

`record` only appends to a bounded queue; a background task writes the queue in entity-group
transactions every FLUSH_SECONDS (and at close). When storage is slower than the traffic the queue
fills, and further records are dropped and counted (one warning per flush says how many), because
memory must stay bounded and no caller may wait on storage for an audit line.

Rows: PartitionKey = the UTC day; RowKey = the call's time in epoch milliseconds (13 digits, so key
order is time order), this process's random id and a sequence number, so many processes never
collide and a day's rows read back oldest first. Argument values are never stored: only their hash.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import itertools
import logging
import math
import uuid
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..config.tables import Table
from ..errors import InvalidRequest
from .audit import RemoteCall

if TYPE_CHECKING:
    from azure.data.tables.aio import TableServiceClient

log = logging.getLogger("gateway.remote.audit_store")

TABLE_SUFFIX = "remotecalls"
FLUSH_SECONDS = 5.0
CLOSE_FLUSH_SECONDS = 5.0
MAX_QUEUED = 10_000
"""Records held while storage is slow or down; beyond this they are dropped and counted."""
BATCH = 100
"""Entities per table transaction (the service's limit)."""
OUTCOMES = ("ok", "error", "refused", "timeout", "failed")
MAX_REPORT_RECORDS = 50_000
"""The most records one grouped report reads; beyond them it says it was truncated."""


def day_of(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.UTC).date().isoformat()


def iso(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class AuditStore:
    """A `RemoteAudit` sink (`audit.add_sink(store)`) writing to `<prefix>remotecalls`."""

    def __init__(self, service: TableServiceClient, prefix: str, *, flush_seconds: float = FLUSH_SECONDS,
                 max_queued: int = MAX_QUEUED) -> None:
        self.table_name = f"{prefix}{TABLE_SUFFIX}"
        self._service = service
        self._prefix = prefix
        self._table = Table(service.get_table_client(self.table_name))
        self._ready = False
        self._flush_seconds = flush_seconds
        self._queue: deque[tuple[str, RemoteCall]] = deque()      # (RowKey, record)
        self._max = max_queued
        self.dropped = 0                  # since the process started
        self._dropped_unlogged = 0
        self.process = uuid.uuid4().hex[:12]
        self._seq = itertools.count()
        self._task: asyncio.Task[None] | None = None
        self._lock: asyncio.Lock | None = None
        self._closed = False
        self._writing = 0                 # records taken from the queue by the write in progress

    def __call__(self, call: RemoteCall) -> None:
        """Queue one record; never waits, never raises for storage."""
        if len(self._queue) >= self._max:
            self.dropped += 1
            self._dropped_unlogged += 1
            return
        self._queue.append((f"{int(call.at * 1000):013d}-{self.process}-{next(self._seq):08d}", call))
        if self._task is None and not self._closed:
            with contextlib.suppress(RuntimeError):   # no running loop: close writes it
                self._task = asyncio.get_running_loop().create_task(self._run(), name="remote-calls-flush")

    @property
    def queued(self) -> int:
        """Records not yet written (the write in progress included)."""
        return len(self._queue) + self._writing

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._flush_seconds)
            await self.flush()

    async def flush(self) -> bool:
        """Write what is queued, oldest first; what cannot be written stays queued. True when empty."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            self._log_drops()
            while self._queue:
                batch = self._next_batch()
                self._writing = len(batch)
                try:
                    if not self._ready:
                        await self._table.ensure()
                        self._ready = True
                    await self._table.transaction([("upsert", _entity(key, c)) for key, c in batch])
                except InvalidRequest:       # a record storage can never take: it must not block the rest
                    self.dropped += len(batch)
                    log.warning("remote calls: table %s refused %d record(s) as too large; dropped them",
                                self.table_name, len(batch))
                except asyncio.CancelledError:       # shutdown mid-write: close writes them again
                    self._queue.extendleft(reversed(batch))
                    raise
                except Exception as exc:
                    self._queue.extendleft(reversed(batch))
                    log.warning("remote calls: could not write %d record(s) to table %s, kept for the "
                                "next flush (%s)", len(self._queue), self.table_name, type(exc).__name__)
                    return False
                finally:
                    self._writing = 0
            return True

    def _next_batch(self) -> list[tuple[str, RemoteCall]]:
        """Up to BATCH queued records of the first one's day (a transaction spans one partition)."""
        day = day_of(self._queue[0][1].at)
        batch: list[tuple[str, RemoteCall]] = []
        while self._queue and len(batch) < BATCH and day_of(self._queue[0][1].at) == day:
            batch.append(self._queue.popleft())
        return batch

    def _log_drops(self) -> None:
        if self._dropped_unlogged:
            log.warning("remote calls: dropped %d record(s): more than %d were waiting for table %s",
                        self._dropped_unlogged, self._max, self.table_name)
            self._dropped_unlogged = 0

    async def read(self, query: CallQuery, *, after: tuple[str, str] | None = None,
                   limit: int | None = None) -> list[dict[str, Any]]:
        """Every process's records (`read_calls`), after writing this process's queue."""
        await self.flush()
        return await read_calls(self._service, self._prefix, query, after=after, limit=limit)

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
            pass
        if self._queue or self._dropped_unlogged:
            log.warning("remote calls: gave up writing %d record(s) at shutdown", len(self._queue))
        self._log_drops()


def _entity(row_key: str, call: RemoteCall) -> dict[str, Any]:
    from azure.data.tables import EdmType, EntityProperty

    return {"PartitionKey": day_of(call.at), "RowKey": row_key, "kind": call.kind, "target": call.target,
            "principal": call.principal, "method": call.method, "tool": call.tool or "",
            "outcome": call.outcome, "status": call.status, "latency_ms": float(call.latency_ms),
            "request_id": call.request_id, "args_hash": call.args_hash or "", "email": call.email or "",
            "identities": ",".join(call.identities),
            "at_ms": EntityProperty(int(call.at * 1000), EdmType.INT64)}


# ---- reading: `GET /manage/remote-calls`, `python -m shared usage --calls` --------------------------

@dataclass(frozen=True, slots=True)
class CallQuery:
    """Which records: a time window (epoch seconds, both ends included) and exact-match filters."""
    since: float | None = None
    until: float | None = None
    kind: str | None = None          # mcp | agent
    target: str | None = None
    principal: str | None = None


def _filter(query: CallQuery, after: tuple[str, str] | None) -> tuple[str, dict[str, Any]]:
    """The OData filter and its parameters (values are parameters, never pasted into the text)."""
    clauses: list[str] = []
    params: dict[str, Any] = {}
    if query.since is not None:
        clauses.append("PartitionKey ge @since_day and RowKey ge @since_key")
        params |= {"since_day": day_of(query.since), "since_key": f"{int(query.since * 1000):013d}"}
    if query.until is not None:
        clauses.append("PartitionKey le @until_day and RowKey lt @until_key")
        params |= {"until_day": day_of(query.until), "until_key": f"{int(query.until * 1000) + 1:013d}"}
    for name in ("kind", "target", "principal"):
        value = getattr(query, name)
        if value is not None:
            clauses.append(f"{name} eq @{name}")
            params[name] = value
    if after is not None:
        # the SDK finds parameters between spaces: none may touch a parenthesis
        clauses.append("(PartitionKey gt @after_day or "
                       "(PartitionKey eq @after_day and RowKey gt @after_key ) )")
        params |= {"after_day": after[0], "after_key": after[1]}
    return " and ".join(clauses), params


async def read_calls(service: TableServiceClient, prefix: str, query: CallQuery, *,
                     after: tuple[str, str] | None = None, limit: int | None = None) -> list[dict[str, Any]]:
    """Records in time order (each with its `key`, the cursor position after it), at most `limit`."""
    table = Table(service.get_table_client(f"{prefix}{TABLE_SUFFIX}"))
    text, params = _filter(query, after)
    entities = await (table.query(text, params, limit=limit) if text else table.query(limit=limit))
    return [record_of(e) for e in entities]


def record_of(entity: Any) -> dict[str, Any]:
    """A stored row as the reports show it."""
    millis = getattr(entity.get("at_ms"), "value", entity.get("at_ms")) or 0
    identities = str(entity.get("identities") or "")
    return {"key": [entity["PartitionKey"], entity["RowKey"]], "at": iso(int(millis) / 1000),
            "kind": str(entity.get("kind", "")), "target": str(entity.get("target", "")),
            "principal": str(entity.get("principal", "")), "method": str(entity.get("method", "")),
            "tool": entity.get("tool") or None, "outcome": str(entity.get("outcome", "")),
            "status": int(entity.get("status") or 0), "latency_ms": float(entity.get("latency_ms") or 0.0),
            "request_id": str(entity.get("request_id", "")), "args_hash": entity.get("args_hash") or None,
            "email": entity.get("email") or None,
            "identities": identities.split(",") if identities else []}


CALL_GROUPS = {"user": "principal", "principal": "principal", "target": "target", "tool": "tool",
               "day": "day"}
"""Names to group calls by and the record member each groups by (`tool`: the tool, or for an agent
the JSON-RPC method; `target` also keeps the kind apart, an MCP server and an agent may share a name)."""


def _group_value(record: dict[str, Any], key: str) -> tuple[str, ...]:
    if key == "day":
        return (record["at"][:10],)
    if key == "target":
        return (record["kind"], record["target"])
    if key == "tool":
        return (record["tool"] or record["method"],)
    return (str(record[key]),)


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile of sorted `values`."""
    if not values:
        return 0.0
    rank = min(max(1, math.ceil(fraction * len(values))), len(values))
    return round(values[rank - 1], 1)


def group_calls(records: Iterable[dict[str, Any]], keys: tuple[str, ...]) -> list[dict[str, Any]]:
    """Per distinct value of `keys`: calls, calls per outcome, p50 and p95 latency; sorted by key."""
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for record in records:
        key = tuple(part for k in keys for part in _group_value(record, k))
        groups.setdefault(key, []).append(record)
    out = []
    for key in sorted(groups):
        rows = groups[key]
        named: dict[str, Any] = {}
        parts = iter(key)
        for k in keys:
            if k == "target":
                named["kind"] = next(parts)
            named[k] = next(parts)
        latencies = sorted(r["latency_ms"] for r in rows)
        outcomes = {o: 0 for o in OUTCOMES}
        for r in rows:
            outcomes[r["outcome"]] = outcomes.get(r["outcome"], 0) + 1
        out.append({**named, "calls": len(rows), **outcomes,
                    "p50_ms": percentile(latencies, 0.5), "p95_ms": percentile(latencies, 0.95)})
    return out
