"""Keeps this process's keys and tokens fresh while it lives, so no request waits for a refresh."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from .heap import settle_heap

if TYPE_CHECKING:
    from .runtime import Gateway

log = logging.getLogger("gateway.keeper")

INTERVAL_SECONDS = 30


async def keep(gw: Gateway, interval: float = INTERVAL_SECONDS) -> None:
    """Every interval, start the refreshes that are due (ahead of expiry) and nothing else."""
    settled = False
    while True:
        await asyncio.sleep(interval)
        view = gw.snapshot.view
        if view is None:
            continue
        if not settled:      # configuration, keys and sessions are in place by now
            await gw.limiter.warm(view.config)
            settle_heap()
            settled = True
        try:
            gw.authenticator.refresh_due(view.config)
            # a credential refreshes itself in the background when its token nears expiry
            await asyncio.gather(*(gw.credentials.for_account(a).auth_headers()
                                   for a in view.config.accounts), return_exceptions=True)
        except Exception:
            log.exception("keeper pass failed")
