"""The command line: `python -m shared <command>`, on the same tables as the app.

Every command but serve prints for people by default and takes `--output json`; errors go to stderr,
and the exit codes are those of shared/cli/output.py (2 for any error).
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

from .cli import configure
from .cli import mcp as mcp_cli
from .cli import usage as usage_cli
from .cli.gateway import with_gateway
from .cli.output import CommandError, common, emit
from .cli.reports import render_explain, render_prewarm
from .cli.target import announce
from .config.schema import ConfigError
from .errors import GatewayError
from .manage.cli import register as register_audit
from .settings import SettingsError, load


def cmd_prewarm(args: argparse.Namespace) -> int:
    from . import prewarm

    announce(load())        # it writes: the keys and its report, to the health table
    report = with_gateway(prewarm.run)
    emit(args, report, lambda: render_prewarm(report))
    return 0 if report.get("ok") else 1


def cmd_status(args: argparse.Namespace) -> int:
    """A prewarm pass from this machine, then the same report as /manage/status."""
    from . import prewarm
    from .status import render, status

    async def work(gw: Any) -> dict[str, Any]:
        await prewarm.run(gw, record=False)     # what this machine sees; the timer's record is kept
        return await status(gw)

    report = with_gateway(work)
    emit(args, report, lambda: render(report))
    return 0 if report["ok"] else 1


def cmd_explain(args: argparse.Namespace) -> int:
    from .explain import explain

    token = sys.stdin.read().strip() if args.token == "-" else args.token
    report = with_gateway(lambda gw: explain(gw, token, args.resource))
    emit(args, report, lambda: render_explain(report))
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
    parents = [common()]
    configure.register(sub, parents)
    p = sub.add_parser("prewarm", help="run the timer's work once and print its report", parents=parents)
    p.set_defaults(run=cmd_prewarm)
    p = sub.add_parser("status", help="keys, tokens and configuration as this machine sees them",
                       parents=parents)
    p.set_defaults(run=cmd_status)
    p = sub.add_parser("explain", help="every check a token passes or fails, and its role on a resource",
                       parents=parents)
    p.add_argument("--token", required=True, help="the JWT, or - to read it from standard input")
    p.add_argument("--resource", required=True, help="e.g. model:gpt-4o")
    p.set_defaults(run=cmd_explain)
    usage_cli.register(sub, parents)
    mcp_cli.register(sub, parents)
    register_audit(sub, parents)
    args = parser.parse_args(argv)
    return run(args)


def quiet_logs() -> None:
    """A command prints its result; the gateway's info lines (configuration loaded, keys seeded) are
    for a service's log. Warnings and errors still reach stderr."""
    from . import logsafe

    handler = logsafe.stream_handler()
    handler.setLevel(logging.WARNING)
    logging.getLogger("gateway").addHandler(handler)   # the runtime then adds no handler of its own


def run(args: argparse.Namespace) -> int:
    """The command's exit code; every error is one line on stderr and exit 2."""
    if args.command != "serve":
        quiet_logs()
    try:
        return int(args.run(args))
    except ConfigError as exc:
        message = f"invalid configuration: {exc}; nothing was changed"
    except SettingsError as exc:
        message = f"settings: {exc}"
    except CommandError as exc:
        message = str(exc)
    except GatewayError as exc:
        message = exc.message
    print(f"error: {message}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
