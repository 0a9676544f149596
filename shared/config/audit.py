"""The audit trail: one entity per change in `<prefix>audit`, written with the change it records.

Every change set (a /manage request, an `apply`) gets one id; each of its entity changes is a row
with who made it (a principal, or `os:<user>` from the CLI), what (action, kind, key), the documents
before and after, and when. Rows sort by time: RowKey is the change time in nanoseconds then the
change-set id and a sequence number, all in one partition, so a change set is written in one
entity-group transaction (up to 100 rows at a time).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ..errors import Unavailable

if TYPE_CHECKING:
    from ..config.entities import Applied
    from ..config.store import ConfigStore

PARTITION = "a"
BATCH = 100


def _action(before: object, after: object) -> str:
    return "create" if before is None else ("delete" if after is None else "update")


def _json(value: Any) -> str:
    return "" if value is None else json.dumps(value, sort_keys=True, separators=(",", ":"))


async def record(store: ConfigStore, actor: str, applied: Iterable[Applied]) -> None:
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
    table = store.table("audit")
    for start in range(0, len(rows), BATCH):
        await table.submit_transaction([("create", row) for row in rows[start:start + BATCH]])


def _entry(entity: dict[str, Any]) -> dict[str, Any]:
    return {"at": entity["at"], "actor": entity["actor"], "change_set": entity["change_set"],
            "action": entity["action"], "kind": entity["kind"], "key": entity["key"],
            "before": json.loads(entity["before"]) if entity.get("before") else None,
            "after": json.loads(entity["after"]) if entity.get("after") else None}


async def read(store: ConfigStore, since: float | None = None) -> list[dict[str, Any]]:
    """Every recorded change at or after `since` (epoch seconds), oldest first."""
    await store.ensure_tables()
    table = store.table("audit")
    params: dict[str, Any] = {"pk": PARTITION, "rk": f"{int((since or 0) * 1e9):020d}"}
    try:
        return [_entry(e) async for e in
                table.query_entities("PartitionKey eq @pk and RowKey ge @rk", parameters=params)]
    except Exception as exc:
        raise Unavailable(f"could not read the audit table ({type(exc).__name__})") from exc


def render(entries: list[dict[str, Any]]) -> str:
    lines = []
    for e in entries:
        label = e["key"].replace("\n", " -> ")
        what = f"{e['action']} {e['kind']} {label}"
        if e["kind"] == "collaborators":
            what += f" ({(e['before'] or {}).get('role', '-')} => {(e['after'] or {}).get('role', '-')})"
        lines.append(f"{e['at']}  {e['actor']}  {what}")
    return "\n".join(lines)


def parse_since(text: str) -> float:
    """`--since`: an ISO date or time (UTC unless it says), or a duration back from now: 30m, 12h, 7d."""
    text = text.strip()
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    if text[:-1].isdigit() and text[-1:] in units:
        return time.time() - int(text[:-1]) * units[text[-1]]
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"--since {text!r}: use an ISO date or time, or a duration like 30m, 12h, 7d") \
            from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp()
