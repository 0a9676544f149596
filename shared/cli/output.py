"""How every command speaks: for people by default (tables, ISO-8601 times, short values), JSON with
`--output json` (one document on stdout, nothing else there), notes and errors on stderr.

Exit codes are the same everywhere: 0 done; 1 when the command's answer is "no" (diff: something
would change, status: degraded, explain: not allowed, prewarm: something failed); 2 on any error
(bad arguments, settings or file, storage refusing or unreachable), with nothing changed.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from ..config.audit import parse_since

FORMATS = ("text", "json")
SHORT = 60
"""Longest value shown in a plan; longer ones are cut with an ellipsis."""


class CommandError(Exception):
    """The command cannot do what was asked (exit 2); the message says why and what to do."""


def add_output(parser: argparse.ArgumentParser) -> None:
    """`--output text|json`, and `--json`, its older spelling."""
    parser.add_argument("--output", choices=FORMATS, default="text",
                        help="text for people (default), or json: one JSON document on stdout")
    parser.add_argument("--json", dest="output", action="store_const", const="json",
                        help="the same as --output json")


def common() -> argparse.ArgumentParser:
    """The options every command but serve takes (a parent parser)."""
    parser = argparse.ArgumentParser(add_help=False)
    add_output(parser)
    return parser


def wants_json(args: argparse.Namespace) -> bool:
    return getattr(args, "output", "text") == "json"


def emit(args: argparse.Namespace, data: Any, text: Callable[[], str]) -> None:
    """The command's result on stdout: `data` as JSON, or `text()` for people."""
    if wants_json(args):
        print(json.dumps(data, indent=2, ensure_ascii=False, default=str))
    else:
        out = text()
        if out:
            print(out)


def note(message: str) -> None:
    """A line for the person running the command that is not its result (stderr)."""
    print(message, file=sys.stderr, flush=True)


def iso(epoch: float | None) -> str:
    """An epoch time as ISO-8601 UTC to the second, `-` when unknown."""
    if not epoch:
        return "-"
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def short(value: Any, limit: int = SHORT) -> str:
    """A value as JSON would spell it (strings quoted), cut to `limit` characters."""
    if value is None:
        return "(unset)"
    text = json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(", ", ": "))
    return text if len(text) <= limit else text[:limit - 1] + "…"


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]], numeric: Sequence[str] = ()) -> str:
    """Aligned columns; `numeric` columns to the right."""
    cells = [[str(h) for h in headers], *[[_cell(v) for v in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    return "\n".join("  ".join(c.rjust(w) if h in numeric else c.ljust(w)
                               for c, w, h in zip(row, widths, headers, strict=True)).rstrip()
                     for row in cells)


def _cell(value: Any) -> str:
    return "-" if value is None or value == "" else str(value)


def since(text: str) -> float:
    """`--since`: an ISO-8601 date or time (UTC unless it says) or a duration back from now."""
    try:
        return parse_since(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a time: use an ISO-8601 date or time (YYYY-MM-DD, 2025-01-31T09:00Z) "
            "or a duration back from now (30m, 12h, 7d)") from None
