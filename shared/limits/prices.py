"""What tokens cost: USD per million tokens per gateway model, as integer micro-USD for the counters.

A model's price is, in order:
1. the configuration's `prices` entry for the gateway model's name, from its `from` date (UTC) on;
2. otherwise the built-in price: the genai-prices library's table for Azure OpenAI (the library falls
   back to OpenAI's own prices for models Azure's table lacks), matched by the gateway model's name
   and by each of its targets' deployment names. Where several names match, each price member is the
   highest any of them has, so a model with targets in several price classes is never under-charged.
   A tiered price (a higher rate past a prompt size) counts at its highest tier, for the same reason.
3. none: the model is unpriced. Its usage is still counted (its cost is reported as unknown), but a
   budget cannot admit it: a budgeted request for an unpriced model is refused (`unpriced`) with a
   message naming the fix, adding the model to `prices`. Charging it at zero would let it spend without
   limit, and at a guessed ceiling would refuse or admit on a number nobody chose.

The library is imported on first use (about a third of a second) and each name's price is looked up
once per UTC day and kept; `prime` loads it ahead of the first request.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from ..config.model import Model, Price

MICRO = 1_000_000


@dataclass(frozen=True, slots=True)
class Rate:
    input: float                   # USD per million tokens
    output: float
    cached_input: float | None = None


def _day(now: float | None) -> str:
    return datetime.fromtimestamp(time.time() if now is None else now, UTC).date().isoformat()


def _usd(value: Any) -> float | None:
    """A library price (a Decimal, or tiers whose highest rate counts) as a float."""
    if value is None:
        return None
    tiers = getattr(value, "tiers", None)
    if tiers is not None:
        return float(max([value.base, *(t.price for t in tiers)]))
    return float(value)


@functools.lru_cache(maxsize=1024)
def builtin_rate(name: str, day: str) -> Rate | None:
    """The library's price for a model or deployment name on a UTC day; None when it has none or the
    model is not priced per token (images, audio minutes)."""
    from genai_prices import data_snapshot

    try:
        _, info = data_snapshot.get_snapshot().find_provider_model(name, None, "azure", None)
    except LookupError:
        return None
    price = info.get_prices(datetime.combine(date.fromisoformat(day), datetime.min.time(), UTC))
    input_rate = _usd(getattr(price, "input_mtok", None))
    if input_rate is None:
        return None
    return Rate(input=input_rate, output=_usd(getattr(price, "output_mtok", None)) or 0.0,
                cached_input=_usd(getattr(price, "cache_read_mtok", None)))


def prime() -> None:
    """Load the library now rather than on the first priced request."""
    builtin_rate("gpt-4o", _day(None))


def _highest(rates: list[Rate]) -> Rate | None:
    if not rates:
        return None
    cached = [r.cached_input if r.cached_input is not None else r.input for r in rates]
    return Rate(input=max(r.input for r in rates), output=max(r.output for r in rates),
                cached_input=None if all(r.cached_input is None for r in rates) else max(cached))


class PriceBook:
    """The price of each gateway model: the configured `prices` (in force from their `effective` date),
    else the built-in price of its names (the model's, and its targets' deployments from `models`)."""

    def __init__(self, prices: Iterable[Price], models: Iterable[Model] = ()) -> None:
        self._prices = {p.model: p for p in prices}
        self._names = {m.name: tuple(dict.fromkeys((m.name, *(t.deployment for t in m.targets))))
                       for m in models}

    def rate(self, model: str, *, now: float | None = None) -> Rate | None:
        day = _day(now)
        price = self._prices.get(model)
        if price is not None and (not price.effective or day >= price.effective):
            return Rate(price.input, price.output, price.cached_input)
        found = [builtin_rate(name, day) for name in self._names.get(model, (model,))]
        return _highest([r for r in found if r is not None])

    @staticmethod
    def micro_usd(rate: Rate, prompt: int, output: int, cached: int = 0) -> int:
        """Cost in micro-USD, rounded up (a budget is never under-charged)."""
        cached = max(0, min(cached, prompt))
        cached_rate = rate.input if rate.cached_input is None else rate.cached_input
        usd_per_million = (prompt - cached) * rate.input + cached * cached_rate + output * rate.output
        return math.ceil(usd_per_million)      # tokens x USD/million = micro-USD


@functools.lru_cache(maxsize=8)
def book(prices: tuple[Price, ...], models: tuple[Model, ...]) -> PriceBook:
    """One PriceBook per configuration's prices and models, built once."""
    return PriceBook(prices, models)


def price_book(view: Any) -> PriceBook:
    """The PriceBook of a configuration view (shared.config.snapshot.View), or the built-in prices alone
    before any configuration is loaded."""
    config = getattr(view, "config", None)
    return book(config.prices, config.models) if config is not None else book((), ())
