"""The audit trail: one entity per change in `<prefix>audit`, written by the store with the change it
records, read by /manage/audit and `python -m shared audit`.

Every change set (a /manage request, an `apply`) gets one id; each of its entity changes is a row
with who made it (a principal, or `os:<user>` from the CLI), what (action, kind, key), the documents
before and after, and when. Rows sort by time: RowKey is the change time in nanoseconds then the
change-set id and a sequence number, all in one partition, so a change set is written in one
entity-group transaction (up to 100 rows at a time), and a page of the trail is a key range.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from .kinds import split_resource

if TYPE_CHECKING:
    from .entities import Applied
    from .tables import Table

PARTITION = "a"
BATCH = 100


@dataclass(frozen=True, slots=True)
class Filter:
    """Which rows a reader wants: at or after `since` (epoch seconds), about `resource` (its document
    or its collaborators), made by `principal` or changing its roles."""

    since: float | None = None
    resource: str | None = None                 # model:gpt-4o, gateway:default, ...
    principal: str | None = None

    def start(self) -> str:
        seconds = min(max(self.since or 0.0, 0.0), 1e11)     # keys hold 20 digits of nanoseconds
        return f"{int(seconds * 1e9):020d}"

    def admits(self, entry: dict[str, Any]) -> bool:
        bound = entry["key"].partition("\n") if entry["kind"] == "collaborators" else None
        if self.resource is not None:
            found = split_resource(self.resource)
            own = found is not None and entry["kind"] == found[0].section and entry["key"] == found[1]
            if not own and (bound is None or bound[0] != self.resource):
                return False
        if self.principal is not None and self.principal != entry["actor"] and \
                (bound is None or bound[2] != self.principal):
            return False
        return True


def _action(before: object, after: object) -> str:
    return "create" if before is None else ("delete" if after is None else "update")


def _json(value: Any) -> str:
    return "" if value is None else json.dumps(value, sort_keys=True, separators=(",", ":"))


async def record(table: Table, actor: str, applied: Iterable[Applied]) -> None:
    changes = [a for a in applied if a.before != a.after]
    if not changes:
        return
    now = time.time_ns()
    change_set = uuid.uuid4().hex
    rows = []
    for i, a in enumerate(changes):
        rows.append({"PartitionKey": PARTITION, "RowKey": f"{now:020d}-{change_set}-{i:06d}",
                     "at": datetime.fromtimestamp(now / 1e9, UTC).isoformat(timespec="milliseconds"),
                     "actor": actor, "change_set": change_set, "action": _action(a.before, a.after),
                     "kind": a.section, "key": a.key, "before": _json(a.before), "after": _json(a.after)})
    for start in range(0, len(rows), BATCH):
        await table.transaction([("create", row) for row in rows[start:start + BATCH]])


def _entry(entity: dict[str, Any]) -> dict[str, Any]:
    return {"at": entity["at"], "actor": entity["actor"], "change_set": entity["change_set"],
            "action": entity["action"], "kind": entity["kind"], "key": entity["key"],
            "before": json.loads(entity["before"]) if entity.get("before") else None,
            "after": json.loads(entity["after"]) if entity.get("after") else None}


async def page(table: Table, wanted: Filter, after: str | None, count: int
               ) -> tuple[list[dict[str, Any]], str | None]:
    """The wanted entries among the next `count` rows after row `after` (or from `since`), oldest
    first, and the row to continue after (None at the end). At most count + 1 rows are read, so a
    page may hold fewer than `count` entries when a filter leaves rows out."""
    if after is None:
        query, params = "PartitionKey eq @pk and RowKey ge @rk", {"pk": PARTITION, "rk": wanted.start()}
    else:
        query, params = "PartitionKey eq @pk and RowKey gt @rk", {"pk": PARTITION, "rk": after}
    rows = await table.query(query, params, limit=count + 1)
    entries = [e for e in (_entry(r) for r in rows[:count]) if wanted.admits(e)]
    return entries, (str(rows[count - 1]["RowKey"]) if len(rows) > count else None)


async def read(table: Table, since: float | None = None) -> list[dict[str, Any]]:
    """Every recorded change at or after `since` (epoch seconds), oldest first (the CLI)."""
    out: list[dict[str, Any]] = []
    after: str | None = None
    while True:
        entries, after = await page(table, Filter(since=since), after, 1000)
        out += entries
        if after is None:
            return out


def parse_since(text: str) -> float:
    """`since`: an ISO date or time (UTC unless it says), or a duration back from now: 30m, 12h, 7d."""
    text = text.strip()
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    if text[:-1].isdigit() and text[-1:] in units:
        return time.time() - int(text[:-1]) * units[text[-1]]
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{text!r}: use an ISO date or time, or a duration like 30m, 12h, 7d") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp()
