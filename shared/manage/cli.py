"""`python -m shared audit [--since T] [--output json]`: the audit trail, oldest first."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from ..cli.output import emit, since, table
from ..config.store import ConfigStore
from ..settings import load


def register(sub: Any, parents: list[argparse.ArgumentParser]) -> None:
    """Add `audit` to the CLI's subcommands."""
    p = sub.add_parser("audit", help="who changed what and when (from /manage and the CLI)", parents=parents)
    p.add_argument("--since", type=since,
                   help="an ISO-8601 date or time (UTC unless it says), or a duration back from now: "
                        "30m, 12h, 7d")
    p.set_defaults(run=cmd_audit)


def _what(e: dict[str, Any]) -> str:
    label = e["key"].replace("\n", " -> ")
    what = f"{e['action']} {e['kind']} {label}"
    if e["kind"] == "collaborators":
        what += f" ({(e['before'] or {}).get('role', '-')} => {(e['after'] or {}).get('role', '-')})"
    return what


def render(entries: list[dict[str, Any]]) -> str:
    return table(("at", "actor", "change"), [(e["at"], e["actor"], _what(e)) for e in entries])


def cmd_audit(args: argparse.Namespace) -> int:
    async def work() -> list[dict[str, Any]]:
        store = ConfigStore.from_settings(load(), operator=True)
        try:
            return await store.audit_trail(args.since)
        finally:
            await store.aclose()

    entries = asyncio.run(work())
    emit(args, entries, lambda: render(entries) if entries else
         "no changes recorded" + (" since then" if args.since is not None else ""))
    return 0
