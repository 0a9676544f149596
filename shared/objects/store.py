"""The ownership records of objects created upstream through the gateway, in `<prefix>objects`.

Every caller shares the gateway's upstream credential, so an upstream id (`resp_...`, `file-...`,
`batch_...`) alone would let anyone who learns it read or delete it. The gateway records each object it
sees created before the id reaches the caller, and consults the record before any read, cancel or
delete: no record, or another owner, answers 404 as if the object did not exist.

Each object is two rows: PartitionKey `<kind>` RowKey `<id>` (found by id), and PartitionKey
`<kind>@<owner>` RowKey `<id>` (the owner's objects, for lists). The owner's row is written first and
removed last, so an id is never findable without its owner knowing it; a failure between the two leaves
only an owner row, which finds nothing.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from ..config.tables import Raced, Table, etag_of

if TYPE_CHECKING:
    from azure.data.tables.aio import TableServiceClient

TABLE_SUFFIX = "objects"
KINDS = ("response", "file", "batch", "vector_store")
_CACHE = 10_000
PRUNE_GRACE_SECONDS = 3600
"""How long after its `expires` a record is kept: clocks differ, and an upstream may keep an object a
little longer than it said."""


@dataclass(frozen=True, slots=True)
class Owned:
    kind: str                   # one of KINDS
    object_id: str              # the upstream's id
    account: str                # the upstream account that holds it
    owner: str                  # user:<provider>/<unique id>
    model: str | None = None    # the gateway model it was made through: its managers may see it
    created: float = 0.0
    expires: float | None = None   # when the upstream discards it; the record is pruned after that
    settled: bool = False       # a batch whose usage was charged: charged once, whoever reads it first


def _key(text: str) -> str:
    """A RowKey or PartitionKey: Table Storage refuses / \\ # ? and control characters in keys."""
    return "".join(c if c.isalnum() or c in "-_.:@" else f"~{ord(c):x}~" for c in text)


def _entity(owned: Owned, partition: str) -> dict[str, object]:
    entity: dict[str, object] = {"PartitionKey": partition, "RowKey": _key(owned.object_id),
                                 "object_id": owned.object_id, "kind": owned.kind, "account": owned.account,
                                 "owner": owned.owner, "model": owned.model or "", "created": owned.created,
                                 "settled": owned.settled}
    if owned.expires is not None:
        entity["expires"] = float(owned.expires)     # one type, so a filter on it matches every row
    return entity


def _owned(entity: dict[str, object]) -> Owned:
    expires = entity.get("expires")
    return Owned(kind=str(entity["kind"]), object_id=str(entity["object_id"]), account=str(entity["account"]),
                 owner=str(entity["owner"]), model=str(entity.get("model") or "") or None,
                 created=float(entity.get("created") or 0.0),   # type: ignore[arg-type]
                 expires=None if expires is None else float(expires),   # type: ignore[arg-type]
                 settled=entity.get("settled") is True)


class ObjectStore:
    """Storage errors arrive as the error family (Unavailable), translated by `Table`. Records found
    are cached (an object's owner never changes); absences are not, so a record just written elsewhere
    is always found."""

    def __init__(self, service: TableServiceClient, prefix: str,
                 clock: Callable[[], float] = time.time) -> None:
        self._table = Table(service.get_table_client(f"{prefix}{TABLE_SUFFIX}"))
        self.table_name = self._table.name
        self._clock = clock
        self._ready = False
        self._cache: OrderedDict[tuple[str, str], Owned] = OrderedDict()
        self.last_pruned: float | None = None

    async def _ensure(self) -> None:
        if not self._ready:
            await self._table.ensure()
            self._ready = True

    async def record(self, owned: Owned) -> None:
        """Keep `owned`: call before its id reaches the caller."""
        await self._ensure()
        await self._table.replace(_entity(owned, f"{owned.kind}@{_key(owned.owner)}"))
        await self._table.replace(_entity(owned, owned.kind))
        self._remember(owned)

    async def find(self, kind: str, object_id: str) -> Owned | None:
        cached = self._cache.get((kind, object_id))
        if cached is not None:
            self._cache.move_to_end((kind, object_id))
            return cached
        entity = await self._table.get(kind, _key(object_id))
        if entity is None:
            return None
        owned = _owned(entity)
        self._remember(owned)
        return owned

    async def forget(self, owned: Owned) -> None:
        """Drop the record: call after the upstream confirmed the delete."""
        self._cache.pop((owned.kind, owned.object_id), None)
        await self._table.delete(owned.kind, _key(owned.object_id))
        await self._table.delete(f"{owned.kind}@{_key(owned.owner)}", _key(owned.object_id))

    async def prune(self, now: float, limit: int) -> int:
        """Drop up to `limit` records whose object expired more than PRUNE_GRACE_SECONDS before `now`;
        how many were dropped. Each goes as in `forget` (its owner row last); an owner row left alone
        by an earlier failure matches too, and goes the same way."""
        await self._ensure()
        rows = await self._table.query("expires lt @cutoff", {"cutoff": now - PRUNE_GRACE_SECONDS},
                                       limit=limit)
        expired = {(o.kind, o.object_id): o for o in map(_owned, rows)}
        for owned in expired.values():
            await self.forget(owned)
        self.last_pruned = now
        return len(expired)

    async def settle(self, owned: Owned) -> bool:
        """Mark `owned` settled; True for the one caller, of any process, that changed it (the row is
        written only while it is the version just read), False when it already was or another won."""
        await self._ensure()
        entity = await self._table.get(owned.kind, _key(owned.object_id))
        if entity is None or entity.get("settled") is True:
            return False
        done = replace(_owned(entity), settled=True)
        try:
            await self._table.replace(_entity(done, owned.kind), etag=etag_of(entity))
        except Raced:
            return False
        await self._table.replace(_entity(done, f"{done.kind}@{_key(done.owner)}"))
        self._remember(done)
        return True

    async def owned_by(self, kind: str, owner: str, limit: int = 10_000) -> list[Owned]:
        """The owner's objects of `kind`, in id order."""
        rows = await self._table.query("PartitionKey eq @pk", {"pk": f"{kind}@{_key(owner)}"}, limit=limit)
        return [_owned(e) for e in rows]

    def _remember(self, owned: Owned) -> None:
        self._cache[(owned.kind, owned.object_id)] = owned
        if len(self._cache) > _CACHE:
            self._cache.popitem(last=False)
