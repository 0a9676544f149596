"""Keeps keys and credentials warm: the timer's job, a cold start's warm-up, and the in-process keeper.

The timer runs on one instance only, and on Flex Consumption not where HTTP is served, so it cannot
fill other processes' memory. It does what every instance can share: stores each identity provider's
keys as last-known-good in the health table, checks that every upstream account still yields a token
(a canary: the token stays in this process's memory only), records a health report, and (hourly, a
bounded batch) drops the ownership records of stored objects their upstream has discarded. Every serving
process warms itself: from the stored keys first, and by refreshing ahead of expiry while it lives.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from . import runtime
from .errors import GatewayError

log = logging.getLogger("gateway.prewarm")

SCHEDULE = "0 */5 * * * *"      # NCRONTAB (with seconds), UTC: every 5 minutes
INTERVAL_SECONDS = 300
PRUNE_EVERY_SECONDS = 3600
PRUNE_LIMIT = 500


async def run(gw: runtime.Gateway, *, record: bool = True) -> dict[str, Any]:
    """One pass of the timer's job; the report says what succeeded and what failed, in words.
    With `record`, keys and the report are written to the health table for every instance."""
    started = time.time()
    report: dict[str, Any] = {"started_at": started, "config": {}, "identity_providers": {},
                              "accounts": {}}
    try:
        view = await gw.snapshot.reload()
    except GatewayError as exc:
        report["config"] = {"ok": False, "error": exc.message}
        report["ok"] = False
        return await _finish(gw, report, record)
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
    if record:
        try:
            skipped = await gw.health.save_keys(gw.authenticator.saved_keys(view.config))
        except Exception as exc:
            report["ok"] = False
            report["stored_keys_error"] = f"could not store last-known-good keys: {type(exc).__name__}"
        else:
            for name in skipped:
                report["identity_providers"][name]["note"] = "key set too large to store"
        await _prune(gw, report, started)
    return await _finish(gw, report, record)


async def _prune(gw: runtime.Gateway, report: dict[str, Any], now: float) -> None:
    """At most every PRUNE_EVERY_SECONDS per process, up to PRUNE_LIMIT ownership records of objects
    the upstream has discarded go (never on a request path: this is the timer's work)."""
    last = gw.objects.last_pruned
    if last is not None and now - last < PRUNE_EVERY_SECONDS:
        return
    try:
        report["objects"] = {"pruned": await gw.objects.prune(now, PRUNE_LIMIT)}
    except GatewayError as exc:
        report["objects"] = {"error": exc.message}
        log.warning("pruning expired object records failed: %s", exc.message)


async def _finish(gw: runtime.Gateway, report: dict[str, Any], record: bool) -> dict[str, Any]:
    report["seconds"] = round(time.time() - report["started_at"], 3)
    gw.last_prewarm = report
    if record:
        try:
            await gw.health.write_report(report)
        except Exception as exc:
            log.warning("could not record the prewarm report: %s", type(exc).__name__)
    return report


async def timer_job() -> dict[str, Any]:
    gw = await runtime.gateway()
    report = await run(gw)
    (log.info if report["ok"] else log.warning)("prewarm: %s", report)
    return report


async def warm_up() -> None:
    """What a cold start needs before its first request: configuration, keys (stored ones first),
    and a token for every account. Failures are left for requests to report."""
    gw = await runtime.gateway()
    with contextlib.suppress(GatewayError):
        view = await gw.snapshot.current()
        await asyncio.gather(gw.authenticator.warm(view.config),
                             gw.credentials.refresh_all(view.config.accounts),
                             gw.limiter.warm(view.config))
