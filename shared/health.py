"""Keeps what the timer learns for every instance in the `<prefix>health` table: each identity
provider's last-known-good JWKS (public data) and the report of the timer's last run. Access tokens
are bearer secrets and are never stored here or anywhere."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from .auth.jwks import SavedKeys, SourceId
from .config.tables import Table

if TYPE_CHECKING:
    from azure.data.tables.aio import TableServiceClient

log = logging.getLogger("gateway.health")

KEYS_PARTITION = "jwks"
TIMER_PARTITION = "timer"
MAX_STORED_JWKS = 60_000   # a table string property holds 64 KiB; larger key sets are not stored


class HealthStore:
    """Storage errors arrive as the error family (Unavailable), translated by `Table`."""

    def __init__(self, service: TableServiceClient, prefix: str) -> None:
        self._table = Table(service.get_table_client(f"{prefix}health"))
        self._ready = False

    async def _ensure(self) -> None:
        if not self._ready:
            await self._table.ensure()
            self._ready = True

    async def save_keys(self, saved: Iterable[SavedKeys]) -> list[str]:
        """Store each provider's keys; the names of those not stored (too large)."""
        await self._ensure()
        skipped = []
        for s in saved:
            if len(s.raw) > MAX_STORED_JWKS:
                skipped.append(s.source.provider)
                continue
            await self._table.replace({
                "PartitionKey": KEYS_PARTITION, "RowKey": s.source.provider,
                "jwks_uri": s.jwks_uri, "source_jwks_uri": s.source.jwks_uri or "",
                "issuer": s.source.issuer or "", "discovery": s.source.discovery,
                "allow_private_network": s.source.allow_private_network,
                "fetched_at": float(s.fetched_at), "jwks": s.raw.decode("utf-8")})
        return skipped

    async def load_keys(self) -> Mapping[SourceId, SavedKeys]:
        """Every stored key set, keyed by the exact source it came from (one query)."""
        found: dict[SourceId, SavedKeys] = {}
        for e in await self._table.query("PartitionKey eq @pk", {"pk": KEYS_PARTITION}):
            source = SourceId(provider=e["RowKey"], jwks_uri=e.get("source_jwks_uri") or None,
                              issuer=e.get("issuer") or None, discovery=bool(e.get("discovery")),
                              allow_private_network=bool(e.get("allow_private_network")))
            found[source] = SavedKeys(source, e["jwks_uri"], e["jwks"].encode("utf-8"),
                                      float(e["fetched_at"]))
        return found

    async def write_report(self, report: Mapping[str, Any]) -> None:
        await self._ensure()
        await self._table.replace({"PartitionKey": TIMER_PARTITION, "RowKey": "last",
                                   "report": json.dumps(report, default=str)[:60_000]})

    async def last_report(self) -> dict[str, Any] | None:
        entity = await self._table.get(TIMER_PARTITION, "last")
        return None if entity is None else dict(json.loads(entity["report"]))
