"""`python -m funchost --app . --port 7071`: serve a function app through the real Python worker path,
for development and tests where Azure Functions Core Tools is not installed (docs/functions-host.md)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys

from funchost import appconfig
from funchost.host import HostError, serve


async def _run(app: appconfig.AppFolder, port: int, host: str) -> int:
    task = asyncio.ensure_future(serve(app, port, host))
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, task.cancel)
    try:
        return await task
    except asyncio.CancelledError:
        return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m funchost", description=__doc__)
    parser.add_argument("--app", default=".", help="the function app's folder (holds function_app.py)")
    parser.add_argument("--port", type=int, default=7071, help="the HTTP port (default 7071)")
    parser.add_argument("--host", default="127.0.0.1", help="the address to listen on (default 127.0.0.1)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="[%(levelname)s] %(name)s: %(message)s")
    try:
        app = appconfig.load(args.app)
        return asyncio.run(_run(app, args.port, args.host))
    except (HostError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 1


if __name__ == "__main__":
    sys.exit(main())
