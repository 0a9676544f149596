"""`usage [--since T] [--by day,user,model]`: requests and tokens summed over every gateway process's
rows of the usage table, grouped as asked.

Counts are kept per UTC day, so `--since` picks whole days: from the day T falls on (a duration such
as `1h` shortly after midnight includes yesterday).
"""

from __future__ import annotations

import argparse
import asyncio
from datetime import UTC, datetime
from typing import Any

from ..settings import load
from ..upstream.usage import COUNTERS, read_usage
from .output import emit, since, table

GROUPS = {"day": "day", "user": "principal", "principal": "principal", "model": "model"}
"""`--by` names and the row member each groups by (a principal is a user or an external identity)."""
DEFAULT_BY = ("day", "principal", "model")


def by(text: str) -> tuple[str, ...]:
    """`--by user,model`: the row members to group by, in the order given."""
    out: list[str] = []
    for name in (part.strip().lower() for part in text.split(",") if part.strip()):
        if name not in GROUPS:
            raise argparse.ArgumentTypeError(f"{name!r}: group by {', '.join(sorted(GROUPS))}")
        if GROUPS[name] not in out:
            out.append(GROUPS[name])
    if not out:
        raise argparse.ArgumentTypeError("name at least one of day, user, model")
    return tuple(out)


def first_day(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).date().isoformat()


def group(rows: list[dict[str, Any]], keys: tuple[str, ...]) -> list[dict[str, Any]]:
    """Rows summed per distinct value of `keys`, sorted by them."""
    sums: dict[tuple[str, ...], dict[str, Any]] = {}
    for row in rows:
        key = tuple(str(row[k]) for k in keys)
        total = sums.setdefault(key, {**dict(zip(keys, key, strict=True)), **dict.fromkeys(COUNTERS, 0)})
        for name in COUNTERS:
            total[name] += row[name]
    return [sums[key] for key in sorted(sums)]


def render(rows: list[dict[str, Any]], keys: tuple[str, ...]) -> str:
    if not rows:
        return "no usage recorded"
    return table((*keys, *COUNTERS), [[r[h] for h in (*keys, *COUNTERS)] for r in rows], numeric=COUNTERS)


def cmd_usage(args: argparse.Namespace) -> int:
    from ..config.tables import service_from_settings

    settings = load()
    start = first_day(args.since) if args.since is not None else None

    async def work() -> list[dict[str, Any]]:
        service = service_from_settings(settings, operator=True)
        try:
            return await read_usage(service, settings.table_prefix, start)
        finally:
            await service.close()

    rows = group(asyncio.run(work()), args.by)
    emit(args, rows, lambda: render(rows, args.by))
    return 0


def register(sub: Any, parents: list[argparse.ArgumentParser]) -> None:
    """Add `usage` to the CLI's subcommands."""
    p = sub.add_parser("usage", help="requests and tokens per day, user and model", parents=parents)
    p.add_argument("--since", type=since,
                   help="from the UTC day of an ISO-8601 date or time, or of a duration back from now "
                        "(1h, 7d, 30m)")
    p.add_argument("--by", type=by, default=DEFAULT_BY, metavar="day,user,model",
                   help="group by these, in this order (default: all three)")
    p.set_defaults(run=cmd_usage)
