"""`usage [--since T] [--until T] [--by day,user,identity,model]`: requests, tokens and cost summed over
every gateway process's rows of the usage table, grouped as asked (the same report as GET /manage/usage).
For people, a second table follows when MCP servers or agents were called in the window: calls per day
and target. `usage --calls [--by user,target,tool,day]` reports those calls instead (as
GET /manage/remote-calls?group_by=): calls, calls per outcome, p50 and p95 latency in milliseconds.

Counts are kept per UTC day, so `--since` and `--until` pick whole days: from the day T falls on (a
duration such as `1h` shortly after midnight includes yesterday) to the day `--until` falls on. Cost is
in USD; a group whose `unpriced` column is not zero had requests to a model without a price, whose
cost is unknown and not in the total. The `images`, `audio_seconds` and `speech_characters` columns
appear when some group has any (images generated or edited, audio transcribed or translated, text
spoken).
"""

from __future__ import annotations

import argparse
import asyncio
from datetime import UTC, datetime
from typing import Any

from ..remote.audit_store import CALL_GROUPS, MAX_REPORT_RECORDS, OUTCOMES, CallQuery, group_calls, read_calls
from ..settings import Settings, load
from ..upstream.usage import GROUPS, group, read_usage
from .output import CommandError, emit, since, table, wants_json

DEFAULT_BY = ("day", "principal", "identity", "model")
DEFAULT_CALLS_BY = ("day", "principal", "target", "tool")
SECOND_TABLE_BY = ("day", "target")
_TOKENS = ("requests", "prompt_tokens", "cached_tokens", "completion_tokens", "total_tokens")
_MEDIA = ("images", "audio_seconds", "speech_characters")


def by(text: str, groups: dict[str, str] = GROUPS) -> tuple[str, ...]:
    """`--by user,model`: the row members to group by, in the order given."""
    out: list[str] = []
    for name in (part.strip().lower() for part in text.split(",") if part.strip()):
        if name not in groups:
            raise argparse.ArgumentTypeError(f"{name!r}: group by {', '.join(sorted(groups))}")
        if groups[name] not in out:
            out.append(groups[name])
    if not out:
        raise argparse.ArgumentTypeError(f"name at least one of {', '.join(sorted(groups))}")
    return tuple(out)


def day_of(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).date().isoformat()


def render(rows: list[dict[str, Any]], keys: tuple[str, ...]) -> str:
    """The token columns and cost; the unpriced requests and each media counter only when one row
    has some."""
    if not rows:
        return "no usage recorded"
    unpriced = any(r["unpriced_requests"] for r in rows)
    media = tuple(name for name in _MEDIA if any(r[name] for r in rows))
    headers = (*keys, *_TOKENS, "cost_usd", *(("unpriced",) if unpriced else ()), *media)
    lines = [[*(r[k] for k in (*keys, *_TOKENS)), f"{r['cost_usd']:.6f}",
              *((r["unpriced_requests"],) if unpriced else ()), *(r[name] for name in media)] for r in rows]
    return table(headers, lines, numeric=(*_TOKENS, "cost_usd", "unpriced", *_MEDIA))


def render_calls(rows: list[dict[str, Any]], keys: tuple[str, ...]) -> str:
    if not rows:
        return "no MCP or agent calls recorded"
    columns = tuple(c for k in keys for c in (("kind", "target") if k == "target" else (k,)))
    numbers = ("calls", *OUTCOMES, "p50_ms", "p95_ms")
    return table((*columns, *numbers), [[r[c] for c in (*columns, *numbers)] for r in rows], numeric=numbers)


Rows = list[dict[str, Any]]


async def _read(settings: Settings, args: argparse.Namespace, calls: bool) -> tuple[Rows, Rows]:
    """The usage rows (unless `--calls`) and the call records of the window."""
    from ..config.tables import service_from_settings

    start = day_of(args.since) if args.since is not None else None
    end = day_of(args.until) if args.until is not None else None
    service = service_from_settings(settings, operator=True)
    try:
        usage = [] if args.calls else await read_usage(service, settings.table_prefix, start, end)
        records = await read_calls(service, settings.table_prefix, CallQuery(args.since, args.until),
                                   limit=MAX_REPORT_RECORDS) if calls else []
        return usage, records
    finally:
        await service.close()


def cmd_usage(args: argparse.Namespace) -> int:
    settings = load()
    try:
        keys = by(args.by, CALL_GROUPS if args.calls else GROUPS) if args.by else \
            (DEFAULT_CALLS_BY if args.calls else DEFAULT_BY)
    except argparse.ArgumentTypeError as exc:
        raise CommandError(f"--by: {exc}") from None
    usage, records = asyncio.run(_read(settings, args, args.calls or not wants_json(args)))
    if args.calls:
        rows = group_calls(records, keys)
        emit(args, rows, lambda: render_calls(rows, keys))
        return 0
    rows = group(usage, keys)
    calls = render_calls(group_calls(records, SECOND_TABLE_BY), SECOND_TABLE_BY)
    emit(args, rows, lambda: render(rows, keys) + (f"\n\nMCP and agent calls\n{calls}" if records else ""))
    return 0


def register(sub: Any, parents: list[argparse.ArgumentParser]) -> None:
    """Add `usage` to the CLI's subcommands."""
    p = sub.add_parser("usage", help="requests, tokens and cost per day, user, identity and model",
                       parents=parents)
    p.add_argument("--since", type=since,
                   help="from the UTC day of an ISO-8601 date or time, or of a duration back from now "
                        "(1h, 7d, 30m)")
    p.add_argument("--until", type=since, help="to the UTC day of this time (included); default: today")
    p.add_argument("--by", default=None, metavar="day,user,identity,model",
                   help="group by these, in this order (default: all four); with --calls: of day, user, "
                        "target, tool (default: all four)")
    p.add_argument("--calls", action="store_true",
                   help="report MCP tool calls and agent messages: calls per outcome, p50/p95 latency")
    p.set_defaults(run=cmd_usage)

