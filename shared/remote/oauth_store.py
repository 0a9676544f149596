"""Where per-user OAuth tokens for MCP servers live: the `<prefix>oauthtokens` table.

One entity per (server, user): PartitionKey the server's name, RowKey a hash of the user principal
(table keys may not hold the `/` a principal has), `principal` in plain text (it names who, not a
secret) and `sealed`, the tokens encrypted by the caller (shared/remote/seal.py) so that a reader of the
table (a backup, a storage key holder) learns nothing usable. The same table records every spent OAuth
state, so one authorization response is redeemed once across all instances.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..config.tables import Raced, Table, etag_of

if TYPE_CHECKING:
    from azure.data.tables.aio import TableServiceClient

TABLE_SUFFIX = "oauthtokens"
STATE_PARTITION = "~state"      # server names start with a letter or digit: no clash


def row_key(principal: str) -> str:
    return hashlib.sha256(principal.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True, slots=True)
class Stored:
    principal: str
    sealed: str
    etag: str


class OAuthTokenStore:
    """Storage errors arrive as the error family (Unavailable), translated by `Table`."""

    def __init__(self, service: TableServiceClient, prefix: str) -> None:
        self.table_name = f"{prefix}{TABLE_SUFFIX}"
        self._table = Table(service.get_table_client(self.table_name))
        self._ready = False

    async def _ensure(self) -> None:
        if not self._ready:
            await self._table.ensure()
            self._ready = True

    async def get(self, server: str, principal: str) -> Stored | None:
        entity = await self._table.get(server, row_key(principal))
        if entity is None:
            return None
        return Stored(str(entity.get("principal", "")), str(entity.get("sealed", "")), etag_of(entity))

    async def put(self, server: str, principal: str, sealed: str, etag: str | None = None) -> str:
        """Write the user's tokens; with `etag`, only over that version (else Raced). The new ETag."""
        await self._ensure()
        return await self._table.replace({"PartitionKey": server, "RowKey": row_key(principal),
                                          "principal": principal, "sealed": sealed,
                                          "updated_at": time.time()}, etag)

    async def delete(self, server: str, principal: str) -> None:
        await self._table.delete(server, row_key(principal))

    async def delete_all(self, server: str) -> int:
        """Every user's tokens for `server`; how many there were."""
        rows = await self._table.query("PartitionKey eq @pk", {"pk": server})
        for entity in rows:
            await self._table.delete(server, str(entity["RowKey"]))
        return len(rows)

    async def spend_state(self, nonce: str, expires_at: float) -> bool:
        """Record an OAuth state as redeemed: False when it already was (a replay)."""
        await self._ensure()
        try:
            await self._table.create({"PartitionKey": STATE_PARTITION, "RowKey": nonce,
                                      "expires_at": expires_at})
        except Raced:
            return False
        return True
