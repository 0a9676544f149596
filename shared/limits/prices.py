"""What tokens cost: USD per million tokens per gateway model, as integer micro-USD for the counters."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from ..config.model import Price

MICRO = 1_000_000


@dataclass(frozen=True, slots=True)
class Rate:
    input: float                   # USD per million tokens
    output: float
    cached_input: float | None = None


class PriceBook:
    """The price of each gateway model: the configured `prices` (in force from their `effective` date)."""

    def __init__(self, prices: Iterable[Price]) -> None:
        self._prices = {p.model: p for p in prices}

    def rate(self, model: str, *, now: float | None = None) -> Rate | None:
        price = self._prices.get(model)
        if price is None:
            return None
        if price.effective:
            today = datetime.fromtimestamp(now, UTC).date().isoformat() if now else None
            if today is not None and today < price.effective:
                return None
        return Rate(price.input, price.output, price.cached_input)

    @staticmethod
    def micro_usd(rate: Rate, prompt: int, output: int, cached: int = 0) -> int:
        """Cost in micro-USD, rounded up (a budget is never under-charged)."""
        cached = min(cached, prompt)
        cached_rate = rate.input if rate.cached_input is None else rate.cached_input
        usd_per_million = (prompt - cached) * rate.input + cached * cached_rate + output * rate.output
        return math.ceil(usd_per_million)      # tokens x USD/million = micro-USD
