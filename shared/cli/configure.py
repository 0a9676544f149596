"""`apply`, `diff` and `export`: a file made the stored configuration, what that would change, and the
stored configuration as a file.

`apply` creates and updates what the file holds and deletes what it lacks only with `--prune`; many
deletions, or every entity of a kind, also need `--yes` (or a "yes" typed at a terminal), since a
truncated or wrong file would otherwise empty the gateway. A file that holds nothing is refused
unless `--prune --yes` says that emptying it is meant.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from ..config.allowlist import Allowlist
from ..config.document import to_document
from ..config.model import Config
from ..config.plan import DELETE_LIMIT, Plan, is_empty, plan_apply, writes
from ..config.schema import load_file
from ..config.store import ConfigStore
from ..errors import GatewayError
from ..settings import Settings, load
from .output import CommandError, emit, wants_json
from .plan_text import counts, kept_line, plan_json, plan_lines
from .target import Target, announce


async def with_store[T](settings: Settings, work: Callable[[ConfigStore], Awaitable[T]]) -> T:
    store = ConfigStore.from_settings(settings, operator=True)
    try:
        return await work(store)
    finally:
        await store.aclose()


def _desired(args: argparse.Namespace, settings: Settings, *, allow_empty: bool) -> Config:
    """The file, checked (fields, references, the settings' allowlist) before any storage access."""
    desired = load_file(Path(args.file), allowlist=Allowlist.from_settings(settings))
    if is_empty(desired) and not allow_empty:
        wanted = "apply --prune --yes" if args.command == "apply" else "diff --prune"
        raise CommandError(f"{args.file} holds no configuration (empty, or only empty sections); nothing "
                           f"was changed. If deleting everything stored is meant, run {wanted}")
    return desired


async def _plan(store: ConfigStore, desired: Config, prune: bool) -> Plan:
    current, _ = await store.load()
    return plan_apply(current, desired, prune=prune)


def _report(target: Target, plan: Plan, **outcome: Any) -> dict[str, Any]:
    return {"target": target.as_dict(), **plan_json(plan), **outcome}


def cmd_diff(args: argparse.Namespace) -> int:
    """The plan, changing nothing; exit 1 when apply would change something."""
    settings = load()
    target = announce(settings)
    desired = _desired(args, settings, allow_empty=args.prune)
    plan = asyncio.run(with_store(settings, lambda store: _plan(store, desired, args.prune)))

    def text() -> str:
        lines = plan_lines(plan)
        lines.append(f"{len(plan.changes)} change(s) to apply: {counts(plan)}" if plan.changes
                     else "no changes")
        reason = plan.confirmation_needed(args.max_deletes) if args.prune else None
        lines += [kept_line(plan)] if plan.kept else []
        lines += [f"apply --prune would ask for --yes: {reason}"] if reason else []
        return "\n".join(lines)

    emit(args, _report(target, plan, pending=bool(plan.changes)), text)
    return 1 if plan.changes else 0


def cmd_apply(args: argparse.Namespace) -> int:
    """The plan, then its changes written as one change set (the plan shown first, so that a refusal
    or a failure still says what was meant)."""
    if args.yes and not args.prune:
        raise CommandError("--yes confirms the deletions of --prune: give both, or neither")
    settings = load()
    target = announce(settings)
    desired = _desired(args, settings, allow_empty=args.prune and args.yes)

    async def work(store: ConfigStore) -> int:
        plan = await _plan(store, desired, args.prune)
        report = _report(target, plan, applied=False, version=None)
        lines = plan_lines(plan)
        if lines and not wants_json(args):
            print("\n".join(lines), flush=True)
        try:
            if plan.changes:
                plan = await _confirmed(args, store, desired, plan, target)
                await _write(store, plan)
                report.update(applied=True, version=await store.version())
        finally:
            if wants_json(args):
                print(json.dumps(report, indent=2, ensure_ascii=False))
        if not wants_json(args):
            done = f"applied: {counts(plan)}; configuration version {report['version']}"
            print("\n".join(filter(None, [done if report["applied"] else "no changes", kept_line(plan)])))
        return 0

    return asyncio.run(with_store(settings, work))


async def _confirmed(args: argparse.Namespace, store: ConfigStore, desired: Config, plan: Plan,
                     target: Target) -> Plan:
    """The plan to write once its deletions are confirmed (--yes, or "yes" typed at a terminal);
    after a prompt, the plan computed again must be the one confirmed."""
    reason = plan.confirmation_needed(args.max_deletes) if args.prune else None
    if reason is None or args.yes:
        return plan
    if not sys.stdin.isatty():
        raise CommandError(f"not applied: {reason}; nothing was changed. Run it again with --yes to "
                           "confirm (no terminal to ask at)")
    if not _ask(f"{reason} on {target.account}, tables {target.table_prefix}*. Type yes to apply: "):
        raise CommandError("not applied: not confirmed; nothing was changed")
    again = await _plan(store, desired, args.prune)
    if again.changes != plan.changes:
        raise CommandError("the stored configuration changed while waiting for the confirmation; "
                           "nothing was changed: run apply again")
    return again


async def _write(store: ConfigStore, plan: Plan) -> None:
    """One change set: the store undoes what it wrote when any write fails, so a failure means that
    nothing was changed, which the error says."""
    try:
        await store.write(writes(plan.changes))
    except GatewayError as exc:
        said = "" if "nothing was changed" in exc.message else "; nothing was changed"
        raise CommandError(f"not applied: {exc.message}{said}") from None


def _ask(prompt: str) -> bool:
    sys.stderr.write(prompt)
    sys.stderr.flush()
    try:
        answer = sys.stdin.readline()
    except (KeyboardInterrupt, EOFError):
        return False
    return answer.strip().lower() in ("y", "yes")


def cmd_export(args: argparse.Namespace) -> int:
    settings = load()
    config, _ = asyncio.run(with_store(settings, lambda store: store.load()))
    doc = to_document(config)
    if wants_json(args) or (args.path or "").endswith(".json"):
        text = json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
    else:
        import yaml

        text = yaml.safe_dump(doc, sort_keys=False, allow_unicode=True)
    if args.path:
        Path(args.path).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


def _count(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must be 0 or more")
    return value


def register(sub: Any, parents: list[argparse.ArgumentParser]) -> None:
    """Add `apply`, `diff` and `export` to the CLI's subcommands."""
    for name, helptext, run in (
            ("apply", "create and update what FILE holds; with --prune, delete what it lacks", cmd_apply),
            ("diff", "what apply would change, changing nothing (exit 0: nothing, 1: something)", cmd_diff)):
        p = sub.add_parser(name, help=helptext, parents=parents)
        p.add_argument("-f", "--file", required=True, help="the configuration file, YAML or JSON (.json)")
        p.add_argument("--prune", action="store_true", help="also delete what is stored but not in FILE")
        p.add_argument("--max-deletes", type=_count, default=DELETE_LIMIT, metavar="N",
                       help=f"more deletions than this need --yes (default {DELETE_LIMIT}); so does "
                            "deleting every entity of a kind")
        if name == "apply":
            p.add_argument("--yes", action="store_true",
                           help="confirm --prune's deletions without being asked")
        p.set_defaults(run=run)
    p = sub.add_parser("export", help="print the stored configuration as a file apply accepts",
                       parents=parents)
    p.add_argument("-o", dest="path", metavar="FILE",
                   help="write to FILE instead of stdout (JSON when it ends in .json, else YAML)")
    p.set_defaults(run=cmd_export)
