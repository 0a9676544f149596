"""`usage [--since T] [--until T] [--by day,user,identity,model]`: requests, tokens and cost summed over
every gateway process's rows of the usage table, grouped as asked (the same report as GET /manage/usage).

Counts are kept per UTC day, so `--since` and `--until` pick whole days: from the day T falls on (a
duration such as `1h` shortly after midnight includes yesterday) to the day `--until` falls on. Cost is
in USD; a group whose `unpriced` column is not zero had requests to a model without a price, whose
cost is unknown and not in the total.
"""

from __future__ import annotations

import argparse
import asyncio
from datetime import UTC, datetime
from typing import Any

from ..settings import load
from ..upstream.usage import GROUPS, group, read_usage
from .output import emit, since, table

DEFAULT_BY = ("day", "principal", "identity", "model")
_TOKENS = ("requests", "prompt_tokens", "cached_tokens", "completion_tokens", "total_tokens")


def by(text: str) -> tuple[str, ...]:
    """`--by user,model`: the row members to group by, in the order given."""
    out: list[str] = []
    for name in (part.strip().lower() for part in text.split(",") if part.strip()):
        if name not in GROUPS:
            raise argparse.ArgumentTypeError(f"{name!r}: group by {', '.join(sorted(GROUPS))}")
        if GROUPS[name] not in out:
            out.append(GROUPS[name])
    if not out:
        raise argparse.ArgumentTypeError("name at least one of day, user, identity, model")
    return tuple(out)


def day_of(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).date().isoformat()


def render(rows: list[dict[str, Any]], keys: tuple[str, ...]) -> str:
    if not rows:
        return "no usage recorded"
    unpriced = any(r["unpriced_requests"] for r in rows)
    headers = (*keys, *_TOKENS, "cost_usd", *(("unpriced",) if unpriced else ()))
    lines = [[*(r[k] for k in (*keys, *_TOKENS)), f"{r['cost_usd']:.6f}",
              *((r["unpriced_requests"],) if unpriced else ())] for r in rows]
    return table(headers, lines, numeric=(*_TOKENS, "cost_usd", "unpriced"))


def cmd_usage(args: argparse.Namespace) -> int:
    from ..config.tables import service_from_settings

    settings = load()
    start = day_of(args.since) if args.since is not None else None
    end = day_of(args.until) if args.until is not None else None

    async def work() -> list[dict[str, Any]]:
        service = service_from_settings(settings, operator=True)
        try:
            return await read_usage(service, settings.table_prefix, start, end)
        finally:
            await service.close()

    rows = group(asyncio.run(work()), args.by)
    emit(args, rows, lambda: render(rows, args.by))
    return 0


def register(sub: Any, parents: list[argparse.ArgumentParser]) -> None:
    """Add `usage` to the CLI's subcommands."""
    p = sub.add_parser("usage", help="requests, tokens and cost per day, user, identity and model",
                       parents=parents)
    p.add_argument("--since", type=since,
                   help="from the UTC day of an ISO-8601 date or time, or of a duration back from now "
                        "(1h, 7d, 30m)")
    p.add_argument("--until", type=since, help="to the UTC day of this time (included); default: today")
    p.add_argument("--by", type=by, default=DEFAULT_BY, metavar="day,user,identity,model",
                   help="group by these, in this order (default: all four)")
    p.set_defaults(run=cmd_usage)

