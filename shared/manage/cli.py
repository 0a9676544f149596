"""`python -m shared audit [--since WHEN] [--json]`: the audit trail, oldest first."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from ..config import audit
from ..config.store import ConfigStore
from ..settings import load


def register(sub: Any) -> None:
    """Add `audit` to the CLI's subcommands."""
    p = sub.add_parser("audit", help="who changed what and when (from /manage and the CLI)")
    p.add_argument("--since", help="an ISO date or time (UTC), or a duration back from now: 30m, 12h, 7d")
    p.add_argument("--json", action="store_true", help="JSON lines with the documents before and after")
    p.set_defaults(run=cmd_audit)


def render(entries: list[dict[str, Any]]) -> str:
    lines = []
    for e in entries:
        label = e["key"].replace("\n", " -> ")
        what = f"{e['action']} {e['kind']} {label}"
        if e["kind"] == "collaborators":
            what += f" ({(e['before'] or {}).get('role', '-')} => {(e['after'] or {}).get('role', '-')})"
        lines.append(f"{e['at']}  {e['actor']}  {what}")
    return "\n".join(lines)


def cmd_audit(args: argparse.Namespace) -> int:
    try:
        since = audit.parse_since(args.since) if args.since else None
    except ValueError as exc:
        print(f"error: --since {exc}", file=sys.stderr)
        return 2

    async def work() -> list[dict[str, object]]:
        store = ConfigStore.from_settings(load(), operator=True)
        try:
            return await store.audit_trail(since)
        finally:
            await store.aclose()

    entries = asyncio.run(work())
    if args.json:
        for entry in entries:
            print(json.dumps(entry, sort_keys=True))
    elif entries:
        print(render(entries))
    else:
        print("no changes recorded" + (" since then" if since else ""))
    return 0
