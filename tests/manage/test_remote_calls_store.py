"""The remote-call audit store on Azurite: records reach the `<prefix>remotecalls` table off the request
path, in time order, without argument values; a slow or absent storage never makes a caller wait and
costs bounded memory (records beyond the bound are dropped and counted, and the drop is logged)."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import pytest

from sandbox.azurite import Azurite, free_port
from shared.remote.audit import RemoteAudit, RemoteCall, args_hash
from shared.remote.audit_store import AuditStore, CallQuery, group_calls, percentile, read_calls
from tests.harness import unique_prefix


def call(i: int, *, at: float | None = None, target: str = "github", outcome: str = "ok",
         latency: float = 10.0, kind: str = "mcp", principal: str = "user:dev/alice") -> RemoteCall:
    return RemoteCall(kind=kind, target=target, principal=principal, method="tools/call",
                      outcome=outcome, status=200, latency_ms=latency, request_id=f"r{i}", tool="search_docs",
                      args_hash=args_hash({"query": f"secret text {i}"}), email="alice@example.com",
                      identities=("developers",), at=time.time() if at is None else at)


def service(connection: str) -> Any:
    from azure.data.tables.aio import TableServiceClient

    return TableServiceClient.from_connection_string(connection)


def test_records_reach_the_table_in_time_order_without_argument_values(azurite: Azurite) -> None:
    prefix = unique_prefix()

    async def go() -> list[dict[str, Any]]:
        client = service(azurite.connection_string)
        store = AuditStore(client, prefix, flush_seconds=0.05)
        audit = RemoteAudit()
        audit.add_sink(store)
        now = time.time()
        for i in range(150):                      # more than one table transaction
            audit.record(call(i, at=now - 150 + i))
        audit.record(call(999, at=now - 86400 * 2))   # another day: another partition
        for _ in range(100):
            if store.queued == 0:
                break
            await asyncio.sleep(0.05)
        await store.aclose()
        try:
            return await read_calls(client, prefix, CallQuery())
        finally:
            await client.close()

    records = asyncio.run(go())
    assert len(records) == 151
    assert [r["request_id"] for r in records] == ["r999", *(f"r{i}" for i in range(150))]
    first = records[1]
    assert first["args_hash"] == args_hash({"query": "secret text 0"})
    assert first["tool"] == "search_docs" and first["identities"] == ["developers"]
    assert not any("secret text" in str(value) for r in records for value in r.values())


def test_records_survive_a_shutdown_in_the_middle_of_a_write(azurite: Azurite) -> None:
    prefix = unique_prefix()

    async def go() -> int:
        client = service(azurite.connection_string)
        store = AuditStore(client, prefix, flush_seconds=3600)
        for i in range(30):
            store(call(i))
        writing = asyncio.get_running_loop().create_task(store.flush())
        await asyncio.sleep(0)            # the write has taken its batch and waits on storage
        writing.cancel()
        await store.aclose()
        try:
            return len(await read_calls(client, prefix, CallQuery()))
        finally:
            await client.close()

    assert asyncio.run(go()) == 30


def test_reading_filters_by_window_kind_target_and_principal(azurite: Azurite) -> None:
    prefix = unique_prefix()
    now = time.time()
    made = [call(0, at=now - 7200), call(1, at=now - 60, target="jira"),
            call(2, at=now - 30, kind="agent", target="triage", principal="user:dev/bob"), call(3, at=now)]

    async def go() -> dict[str, list[str]]:
        client = service(azurite.connection_string)
        store = AuditStore(client, prefix)
        for c in made:
            store(c)
        assert await store.flush()
        queries = {"window": CallQuery(since=now - 3600, until=now - 1), "kind": CallQuery(kind="agent"),
                   "target": CallQuery(target="github"), "principal": CallQuery(principal="user:dev/bob")}
        try:
            return {name: [r["request_id"] for r in await read_calls(client, prefix, q)]
                    for name, q in queries.items()}
        finally:
            await client.close()

    assert asyncio.run(go()) == {"window": ["r1", "r2"], "kind": ["r2"], "target": ["r0", "r3"],
                                 "principal": ["r2"]}


def test_storage_down_never_blocks_a_record_and_overflow_is_dropped_counted_and_logged(
        caplog: pytest.LogCaptureFixture) -> None:
    dead = f"DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=" \
           f"Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;" \
           f"TableEndpoint=http://127.0.0.1:{free_port()}/devstoreaccount1;"

    async def go() -> tuple[float, int, int, bool]:
        client = service(dead)
        store = AuditStore(client, unique_prefix(), flush_seconds=3600, max_queued=50)
        started = time.perf_counter()
        for i in range(80):
            store(call(i))
        spent = time.perf_counter() - started
        written = await store.flush()
        await client.close()
        return spent, store.queued, store.dropped, written

    with caplog.at_level(logging.WARNING, logger="gateway.remote.audit_store"):
        spent, queued, dropped, written = asyncio.run(go())
    assert spent < 0.05 and not written
    assert (queued, dropped) == (50, 30)
    assert "dropped 30 record(s)" in caplog.text and "kept for the next flush" in caplog.text


@pytest.mark.parametrize(("values", "p50", "p95"), [
    ([], 0.0, 0.0), ([7.0], 7.0, 7.0), ([float(v) for v in range(1, 101)], 50.0, 95.0),
    ([1.0, 2.0, 3.0, 400.0], 2.0, 400.0),
])
def test_latency_percentiles_are_nearest_rank(values: list[float], p50: float, p95: float) -> None:
    assert (percentile(values, 0.5), percentile(values, 0.95)) == (p50, p95)


def test_grouping_counts_outcomes_and_keeps_kinds_apart() -> None:
    records = [{"at": "2026-01-02T00:00:00.000Z", "kind": kind, "target": "x", "principal": "user:dev/a",
                "tool": None, "method": "SendMessage", "outcome": outcome, "latency_ms": 5.0}
               for kind, outcome in (("mcp", "ok"), ("mcp", "timeout"), ("agent", "ok"))]
    assert group_calls(records, ("target",)) == [
        {"kind": "agent", "target": "x", "calls": 1, "ok": 1, "error": 0, "refused": 0, "timeout": 0,
         "failed": 0, "p50_ms": 5.0, "p95_ms": 5.0},
        {"kind": "mcp", "target": "x", "calls": 2, "ok": 1, "error": 0, "refused": 0, "timeout": 1,
         "failed": 0, "p50_ms": 5.0, "p95_ms": 5.0}]
