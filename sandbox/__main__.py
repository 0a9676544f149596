"""`python -m sandbox`: the local sandbox (`make run`, see sandbox/run.py); `python -m sandbox stop`
stops one running in the background (`make stop`); `python -m sandbox token` mints a token for any
user and groups (sandbox/token.py)."""

from __future__ import annotations

import argparse
import sys

from sandbox import pidfile, token
from sandbox.options import DEV_STORAGE, OptionError, options
from sandbox.run import run
from shared.errors import GatewayError
from shared.settings import SettingsError, environment

TABLE_SETTINGS = ("GATEWAY_TABLES_CONNECTION", "GATEWAY_TABLES_ENDPOINT")


def _environment() -> dict[str, str]:
    """The settings; with no tables named, the sandbox's Azurite."""
    env = environment()
    if not any(env.get(name, "").strip() for name in TABLE_SETTINGS):
        env["GATEWAY_TABLES_CONNECTION"] = DEV_STORAGE
    return env


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sandbox", description=__doc__)
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("run", help="the sandbox and the gateway (the default; `make run`)")
    sub.add_parser("stop", help="stop the sandbox running in the background (`make stop`)")
    token.add_arguments(sub.add_parser("token", help="print a token for any user and groups"))
    args = parser.parse_args(argv)
    env = _environment()
    try:
        opts = options(env)
        if args.command == "stop":
            print(pidfile.stop(opts.pid_file))
            return 0
        if args.command == "token":
            return token.mint(args, opts)
        return run(opts, env)
    except (OptionError, SettingsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (GatewayError, RuntimeError) as exc:
        print(f"error: {getattr(exc, 'message', exc)}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
