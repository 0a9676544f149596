"""The timer's job: reload the configuration and refresh every identity provider's keys."""

from __future__ import annotations

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
    report: dict[str, Any] = {"started_at": started, "config": {}, "identity_providers": {}}
    try:
        view = await gw.snapshot.reload()
    except GatewayError as exc:
        report["config"] = {"ok": False, "error": exc.message}
        report["ok"] = False
        return report
    report["config"] = {"ok": gw.snapshot.last_error is None, "version": view.version,
                        "error": gw.snapshot.last_error}
    errors = await gw.authenticator.refresh_all(view.config)
    report["identity_providers"] = {name: {"ok": error is None, "error": error}
                                    for name, error in sorted(errors.items())}
    report["ok"] = report["config"]["ok"] and all(e is None for e in errors.values())
    report["seconds"] = round(time.time() - started, 3)
    return report


async def timer_job() -> dict[str, Any]:
    gw = await runtime.gateway()
    report = await run(gw)
    (log.info if report["ok"] else log.warning)("prewarm: %s", report)
    return report
