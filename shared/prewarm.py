"""The timer's job: reload the configuration, refresh every identity provider's keys, and get a token
for every upstream account as a canary (kept in memory only, never stored or reported)."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from . import runtime
from .errors import GatewayError

log = logging.getLogger("gateway.prewarm")

SCHEDULE = "0 */5 * * * *"      # NCRONTAB (with seconds), UTC: every 5 minutes
INTERVAL_SECONDS = 300


async def run(gw: runtime.Gateway) -> dict[str, Any]:
    """One pass; the report says what succeeded and what failed, in words."""
    started = time.time()
    report: dict[str, Any] = {"started_at": started, "config": {}, "identity_providers": {},
                              "accounts": {}}
    try:
        view = await gw.snapshot.reload()
    except GatewayError as exc:
        report["config"] = {"ok": False, "error": exc.message}
        report["ok"] = False
        gw.last_prewarm = report
        return report
    report["config"] = {"ok": gw.snapshot.last_error is None, "version": view.version,
                        "error": gw.snapshot.last_error}
    key_errors, account_errors = await asyncio.gather(
        gw.authenticator.refresh_all(view.config), gw.credentials.refresh_all(view.config.accounts))
    report["identity_providers"] = {name: {"ok": error is None, "error": error}
                                    for name, error in sorted(key_errors.items())}
    report["accounts"] = {name: {"ok": error is None, "error": error}
                          for name, error in sorted(account_errors.items())}
    report["ok"] = (report["config"]["ok"] and all(e is None for e in key_errors.values())
                    and all(e is None for e in account_errors.values()))
    report["seconds"] = round(time.time() - started, 3)
    gw.last_prewarm = report
    return report


async def timer_job() -> dict[str, Any]:
    gw = await runtime.gateway()
    report = await run(gw)
    (log.info if report["ok"] else log.warning)("prewarm: %s", report)
    return report
