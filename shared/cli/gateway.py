"""A CLI command's work, run against a Gateway built from the settings as the app builds it (reaching
the tables as the operator), and closed afterwards."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..runtime import Gateway


def with_gateway[T](work: Callable[[Gateway], Awaitable[T]]) -> T:
    from .. import runtime

    async def go() -> T:
        try:
            return await work(await runtime.gateway(operator=True))
        finally:
            await runtime.shutdown()

    return asyncio.run(go())
