"""The command line: `python -m shared <command>`, on the same tables as the app."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from .config import plan as planning
from .config.allowlist import Allowlist
from .config.document import to_document
from .config.schema import ConfigError, load_file
from .config.store import ConfigStore
from .errors import GatewayError
from .settings import SettingsError, load
from .upstream.usage import register as register_usage

T = TypeVar("T")


async def _with_store(work: Callable[[ConfigStore], Awaitable[T]]) -> T:
    store = ConfigStore.from_settings(load(), operator=True)
    try:
        return await work(store)
    finally:
        await store.aclose()


def _plan(path: Path) -> Callable[[ConfigStore], Awaitable[tuple[ConfigStore, list[planning.Change]]]]:
    # invalid files (or accounts outside the allowlist) are refused before any storage access
    desired = load_file(path, allowlist=Allowlist.from_settings(load()))

    async def compute(store: ConfigStore) -> tuple[ConfigStore, list[planning.Change]]:
        current, _ = await store.load()
        return store, planning.plan(current, desired)

    return compute


def cmd_diff(args: argparse.Namespace) -> int:
    compute = _plan(Path(args.file))

    async def work(store: ConfigStore) -> int:
        _, changes = await compute(store)
        for change in changes:
            print(change.describe())
        print(f"{len(changes)} change(s) to apply" if changes else "no changes")
        return 0

    return asyncio.run(_with_store(work))


def cmd_apply(args: argparse.Namespace) -> int:
    compute = _plan(Path(args.file))

    async def work(store: ConfigStore) -> int:
        _, changes = await compute(store)
        if not changes:
            print("no changes")
            return 0
        for change in changes:
            print(change.describe())
        await store.write(planning.writes(changes))
        print(f"applied {len(changes)} change(s); configuration version {await store.version()}")
        return 0

    return asyncio.run(_with_store(work))


def cmd_export(args: argparse.Namespace) -> int:
    async def work(store: ConfigStore) -> dict[str, Any]:
        config, _ = await store.load()
        return to_document(config)

    doc = asyncio.run(_with_store(work))
    if args.output and args.output.endswith(".json"):
        text = json.dumps(doc, indent=2) + "\n"
    else:
        import yaml

        text = yaml.safe_dump(doc, sort_keys=False, allow_unicode=True)
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


def cmd_prewarm(args: argparse.Namespace) -> int:
    from . import prewarm

    report = _with_gateway(prewarm.run)
    print(json.dumps(report, indent=2))
    return 0 if report.get("ok") else 1


def _with_gateway(work: Callable[[Any], Awaitable[T]]) -> T:
    """Run `work` against a Gateway built from the settings, as the app would, then close it."""
    from . import runtime

    async def go() -> T:
        try:
            return await work(await runtime.gateway())
        finally:
            await runtime.shutdown()

    return asyncio.run(go())


def cmd_status(args: argparse.Namespace) -> int:
    """A prewarm pass from this machine, then the same report as /manage/status."""
    from . import prewarm
    from .status import render, status

    async def work(gw: Any) -> dict[str, Any]:
        await prewarm.run(gw, record=False)     # what this machine sees; the timer's record is kept
        return await status(gw)

    report = _with_gateway(work)
    print(json.dumps(report, indent=2) if args.json else render(report))
    return 0 if report["ok"] else 1


def cmd_explain(args: argparse.Namespace) -> int:
    from .explain import explain

    token = sys.stdin.read().strip() if args.token == "-" else args.token
    report = _with_gateway(lambda gw: explain(gw, token, args.resource))
    print(json.dumps(report, indent=2))
    return 0 if report["allowed"] else 1


def cmd_serve(args: argparse.Namespace) -> int:
    from .server import serve

    settings = load()  # refuse to start on bad settings, naming the setting
    serve(args.host, settings.port if args.port is None else args.port)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m shared", description="The AI gateway.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("serve", help="run the gateway locally (uvicorn), timer included")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=None, help="default: GATEWAY_PORT (7071)")
    p.set_defaults(run=cmd_serve)
    for name, helptext, fn in (("apply", "make the stored configuration equal FILE", cmd_apply),
                               ("diff", "show what apply would change", cmd_diff)):
        p = sub.add_parser(name, help=helptext)
        p.add_argument("-f", "--file", required=True)
        p.set_defaults(run=fn)
    p = sub.add_parser("export", help="print the stored configuration as a file apply accepts")
    p.add_argument("-o", "--output")
    p.set_defaults(run=cmd_export)
    p = sub.add_parser("prewarm", help="run the timer's work once and print its report")
    p.set_defaults(run=cmd_prewarm)
    p = sub.add_parser("status", help="keys, tokens and configuration as this machine sees them")
    p.add_argument("--json", action="store_true", help="the JSON of /manage/status instead of a table")
    p.set_defaults(run=cmd_status)
    p = sub.add_parser("explain", help="every check a token passes or fails, and its role on a resource")
    p.add_argument("--token", required=True, help="the JWT, or - to read it from standard input")
    p.add_argument("--resource", required=True, help="e.g. model:gpt-4o")
    p.set_defaults(run=cmd_explain)
    # more commands are registered below this line
    from .manage.cli import register as register_audit

    register_audit(sub)
    register_usage(sub)
    args = parser.parse_args(argv)
    try:
        return int(args.run(args))
    except ConfigError as exc:
        print(f"error: invalid configuration: {exc}; nothing was changed", file=sys.stderr)
        return 2
    except SettingsError as exc:
        print(f"error: settings: {exc}", file=sys.stderr)
        return 2
    except GatewayError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
