"""Admits, refuses or settles one request against every rule and budget it meets.

Every cap of every matching rule must admit the request (requests count 1, tokens the reservation,
budgets the reservation's price in micro-USD); it is all or nothing, so what earlier caps took is given
back when a later one refuses. An audit-mode rule is charged like any other but only logs where it
would refuse. Units come from the process's leases (`leases.Leases`), so admission does no I/O once
warm. When the counters cannot be reached, rate limits admit (they fail open) and a budget does what
its `on_store_error` says. The `Ticket` of an admitted request replaces its reservation with the real
usage (`settle`), or gives it all back when nothing was used (`cancel`); a stream that ended without a
usage keeps its reservation. `Ticket.headers()` are OpenAI's x-ratelimit-* headers of the most
restrictive cap.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..config.model import Config
from ..errors import InsufficientQuota, RateLimitExceeded, Unavailable
from . import tokens, windows
from .counters import CounterStore, Grant
from .leases import Leases
from .prices import PriceBook, book
from .rules import Cap, Facts, Match, Rules

if TYPE_CHECKING:
    from ..config.model import Model
    from .tokens import Reservation

log = logging.getLogger("gateway.limits.admission")

NEAR = 0.8
"""A bucket at or above this share of a cap is reported by `status` as near its limit."""
UNITS = {"requests": "requests", "tokens": "tokens", "usd": "micro-USD"}


class ObservedStore:
    """The counter store, remembering from each grant how much of a window the other instances hold,
    so the headers and the status can say what remains without asking the store again."""

    def __init__(self, store: CounterStore) -> None:
        self.store = store
        self._seen: dict[tuple[str, str], tuple[int, int]] = {}   # (bucket, key) -> (granted here, used)

    async def grant(self, bucket: str, window: str, asked: int, limit: int, *, minimum: int = 1) -> Grant:
        grant = await self.store.grant(bucket, window, asked, limit, minimum=minimum)
        granted, _ = self._seen.get((bucket, window), (0, 0))
        self._seen[(bucket, window)] = (granted + grant.granted, grant.used)
        return grant

    async def used(self, bucket: str, window: str) -> int:
        return await self.store.used(bucket, window)

    def others(self, bucket: str, key: str) -> int:
        """What other instances had taken of the window at this process's last grant."""
        granted, used = self._seen.get((bucket, key), (0, 0))
        return max(0, used - granted)

    def forget(self, bucket: str, key: str) -> None:
        self._seen.pop((bucket, key), None)

    async def aclose(self) -> None:
        await self.store.aclose()


@dataclass(slots=True)
class Tally:
    """What this process admitted in one bucket's current window, net of what settlement gave back."""

    key: str
    cap: Cap
    rule: str
    kind: str
    bucket: str
    spent: int = 0


@dataclass(frozen=True, slots=True)
class Taken:
    counter: str
    cap: Cap
    key: str             # the window the units were taken from
    amount: int


class Limiter:
    """One per process: compiles the rules of each configuration version and admits requests."""

    def __init__(self, store: CounterStore, *, default_max_tokens: int,
                 clock: Callable[[], float] = time.time) -> None:
        self.store = ObservedStore(store)
        self.leases = Leases(self.store, clock=clock)
        self.clock = clock
        self.default_max_tokens = default_max_tokens
        self._version: str | None = None
        self.current = Rules(Config())
        self.prices = PriceBook(())
        self._tallies: dict[tuple[str, str], Tally] = {}      # (counter, window unit) -> tally
        self._windows: dict[str, tuple[float, float, str]] = {}   # unit -> (start, end, key)
        self._audited: dict[str, str] = {}                    # counter -> window key last logged

    def rules(self, version: str, config: Config) -> Rules:
        """The compiled rules of this configuration version (compiled on its first request)."""
        if version != self._version:
            self.current, self._version = Rules(config), version
            self.prices = book(config.prices, config.models)
        return self.current

    async def warm(self, config: Config) -> None:
        """With rules or budgets configured, load what their first request would otherwise wait for:
        the tokenizers of the models' families and the price library (in a thread: ~1 s of CPU)."""
        if not (config.rate_limits or config.budgets):
            return
        names = {name for model in config.models for name in tokens.model_names(model)}
        await asyncio.to_thread(_warm, tuple(sorted(names)))

    async def reserve(self, operation: str, doc: Mapping[str, object], model: Model,
                      size: int) -> Reservation:
        """What the request reserves (counted off the loop for a large body: `size` is its bytes)."""
        return await tokens.areserve(operation, doc, size=size, default_max_tokens=self.default_max_tokens,
                                     max_output=model.max_output_tokens, names=tokens.model_names(model))

    def window(self, unit: str, now: float) -> tuple[str, float]:
        """The key of the `unit` window holding `now`, and its seconds left (computed once a window)."""
        start, end, key = self._windows.get(unit, (0.0, 0.0, ""))
        if not start <= now < end:
            key = windows.key(unit, now)
            end = now + windows.seconds_left(unit, now)
            self._windows[unit] = (now, end, key)
        return key, end - now

    async def admit(self, rules: Rules, facts: Facts, reservation: Reservation) -> Ticket:
        """A ticket for the request, or RateLimitExceeded / InsufficientQuota / Unavailable."""
        now = self.clock()
        ticket = Ticket(self, rules.match(facts), facts.model, reservation, now)
        try:
            for match in ticket.matches:
                for cap, counter in zip(match.caps, match.counters, strict=True):
                    await self._charge(ticket, match, cap, counter)
        except BaseException:
            ticket.undo(requests=True)
            raise
        return ticket

    async def _charge(self, ticket: Ticket, match: Match, cap: Cap, counter: str) -> None:
        amount = ticket.amount(match, cap)
        if amount <= 0:
            return
        key, _ = self.window(cap.window, ticket.now)
        fail_open = not match.rule.deny_on_store_error
        taken = False if amount > cap.amount else self.leases.try_take(counter, cap.window, amount,
                                                                       fail_open=fail_open)
        if taken is None:
            taken = await self.leases.take(counter, cap.window, amount, cap.amount, fail_open=fail_open)
        if not taken and not fail_open and self.leases.is_down(counter, cap.window):
            self._unavailable(match)
        if taken:
            ticket.taken.append(Taken(counter, cap, key, amount))
            self._tally(match, cap, counter, key).spent += amount
            return
        self._refuse(ticket, match, cap, counter, amount)

    @staticmethod
    def _unavailable(match: Match) -> None:
        """A budget that denies on store errors cannot be checked: 503, not a spent budget."""
        name = match.rule.name
        log.error("budget %s refuses a request: its counters cannot be reached", name)
        raise Unavailable(f"budget {name!r} cannot be checked: its counters cannot be reached",
                          public=f"budget {name!r} cannot be checked now; try again later")

    def _tally(self, match: Match, cap: Cap, counter: str, key: str) -> Tally:
        tally = self._tallies.get((counter, cap.window))
        if tally is None or tally.key != key:
            if tally is not None:
                self.store.forget(counter, tally.key)
            tally = self._tallies[(counter, cap.window)] = Tally(key, cap, match.rule.name, match.rule.kind,
                                                                 match.bucket)
        return tally

    def _refuse(self, ticket: Ticket, match: Match, cap: Cap, counter: str, amount: int) -> None:
        rule = match.rule
        key, left = self.window(cap.window, ticket.now)
        what = f"{_amount(cap.metric, cap.amount)} per {cap.window}"
        if rule.audit:
            if self._audited.get(counter) != key:
                self._audited[counter] = key
                log.warning("audit: rate limit %s would refuse requests this %s (%s)", rule.name,
                            cap.window, what)
            return
        ticket.undo(requests=True)
        headers = self.headers(ticket.matches, ticket.now)
        if rule.kind == "budget":
            raise InsufficientQuota(f"budget {rule.name!r} is spent: {what}; it renews in "
                                    f"{windows.duration_text(left)}", left, headers)
        if amount > cap.amount:
            raise RateLimitExceeded(f"rate limit {rule.name!r} allows {what}; this request reserves "
                                    f"{amount} {cap.metric} (its prompt and output cap: lower max_tokens)",
                                    left, final=True, headers=headers)
        raise RateLimitExceeded(f"rate limit {rule.name!r} reached: {what}; try again in "
                                f"{windows.duration_text(left)}", left, headers=headers)

    def give_back(self, taken: Taken, amount: int) -> None:
        self.leases.give_back(taken.counter, taken.cap.window, amount, taken.key)
        tally = self._tallies.get((taken.counter, taken.cap.window))
        if tally is not None and tally.key == taken.key:
            tally.spent -= amount

    def overrun(self, taken: Taken, amount: int) -> None:
        """The request used more than it reserved: the lease charges the rest (never past the window's
        limit)."""
        tally = self._tallies.get((taken.counter, taken.cap.window))
        if tally is not None and tally.key == taken.key:
            tally.spent += amount
        self.leases.charge(taken.counter, taken.cap.window, amount, taken.key, taken.cap.amount)

    def remaining(self, counter: str, cap: Cap, now: float) -> int:
        key, _ = self.window(cap.window, now)
        tally = self._tallies.get((counter, cap.window))
        spent = tally.spent if tally is not None and tally.key == key else 0
        return max(0, cap.amount - self.store.others(counter, key) - spent)

    def headers(self, matches: tuple[Match, ...], now: float) -> dict[str, str]:
        """x-ratelimit-{limit,remaining,reset}-{requests,tokens} of the enforced cap of each metric
        with the least remaining (on a tie, the longest wait)."""
        best: dict[str, tuple[int, float, int]] = {}
        for match in matches:
            if match.rule.audit or match.rule.kind == "budget":
                continue
            for cap, counter in zip(match.caps, match.counters, strict=True):
                remaining, (_, left) = self.remaining(counter, cap, now), self.window(cap.window, now)
                if cap.metric not in best or (remaining, -left) < best[cap.metric][:2]:
                    best[cap.metric] = (remaining, -left, cap.amount)
        headers = {}
        for metric, (remaining, wait, limit) in best.items():
            headers[f"x-ratelimit-limit-{metric}"] = str(limit)
            headers[f"x-ratelimit-remaining-{metric}"] = str(remaining)
            headers[f"x-ratelimit-reset-{metric}"] = windows.duration_text(-wait)
        return headers

    def status(self, now: float | None = None) -> dict[str, list[dict[str, object]]]:
        """Per rule, the buckets at or above NEAR of a cap in the current window, as this process
        sees them (its own admissions, and the others' as of its last grant)."""
        now = self.clock() if now is None else now
        report: dict[str, list[dict[str, object]]] = {}
        for (counter, unit), tally in sorted(self._tallies.items()):
            key, left = self.window(unit, now)
            if tally.key != key:
                continue
            used = tally.cap.amount - self.remaining(counter, tally.cap, now)
            if used >= NEAR * tally.cap.amount:
                report.setdefault(f"{tally.kind} {tally.rule}", []).append({
                    "bucket": tally.bucket, "metric": tally.cap.metric, "window": unit, "used": used,
                    "limit": tally.cap.amount, "resets_in": windows.duration_text(left)})
        return report

    async def aclose(self) -> None:
        await self.leases.aclose()
        await self.store.aclose()


def _warm(names: tuple[str, ...]) -> None:
    from . import encodings, prices

    for name in encodings.encoding_names(names) or ("o200k_base",):
        encodings.encoding(name)
    prices.prime()


def _amount(metric: str, amount: int) -> str:
    if metric == "usd":
        return f"{amount / 1_000_000:g} USD"
    return f"{amount} {metric}"


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def _usage_numbers(usage: Mapping[str, object]) -> tuple[int, int, int]:
    """(prompt, output, cached prompt) tokens of an OpenAI usage object, in either API's names."""
    prompt = _int(usage.get("prompt_tokens", usage.get("input_tokens")))
    output = _int(usage.get("completion_tokens", usage.get("output_tokens")))
    details = usage.get("prompt_tokens_details", usage.get("input_tokens_details"))
    cached = _int(details.get("cached_tokens")) if isinstance(details, dict) else 0
    return prompt, output, cached


class Ticket:
    """One admitted request: what it took from which windows, until its usage is known."""

    __slots__ = ("_cost", "_done", "limiter", "matches", "model", "now", "reservation", "taken")

    def __init__(self, limiter: Limiter, matches: tuple[Match, ...], model: str, reservation: Reservation,
                 now: float) -> None:
        self.limiter, self.matches, self.model = limiter, matches, model
        self.reservation, self.now = reservation, now
        self.taken: list[Taken] = []
        self._cost: int | None = None
        self._done = False

    def amount(self, match: Match, cap: Cap) -> int:
        """What this request takes from `cap`: 1 request, its reserved tokens, or their price."""
        if cap.metric == "requests":
            return 1
        if cap.metric == "tokens":
            return self.reservation.tokens
        if self._cost is None:
            rate = self.limiter.prices.rate(self.model, now=self.now)
            if rate is None:
                raise InsufficientQuota(
                    f"budget {match.rule.name!r} cannot price model {self.model!r}: the configuration "
                    "has no price for it (add one under `prices`)", 0)
            self._cost = PriceBook.micro_usd(rate, self.reservation.prompt, self.reservation.output)
        return self._cost

    def headers(self) -> dict[str, str]:
        return self.limiter.headers(self.matches, self.limiter.clock())

    def settle(self, usage: Mapping[str, object] | None) -> None:
        """Replace the reservation with the real usage (once); without a usage it stays charged."""
        if self._done:
            return
        self._done = True
        if usage is None:
            return
        prompt, output, cached = _usage_numbers(usage)
        rate = self.limiter.prices.rate(self.model, now=self.now) if self._cost is not None else None
        for taken in self.taken:
            if taken.cap.metric == "tokens":
                used = prompt + output
            elif taken.cap.metric == "usd" and rate is not None:
                used = PriceBook.micro_usd(rate, prompt, output, cached)
            else:
                continue
            if used < taken.amount:
                self.limiter.give_back(taken, taken.amount - used)
            elif used > taken.amount:
                self.limiter.overrun(taken, used - taken.amount)

    def cancel(self) -> None:
        """Nothing was used (no target answered, or it refused the request): tokens and money go
        back, the request still counts."""
        if not self._done:
            self._done = True
            self.undo(requests=False)

    def undo(self, *, requests: bool) -> None:
        for taken in self.taken:
            if requests or taken.cap.metric != "requests":
                self.limiter.give_back(taken, taken.amount)
        self.taken = [t for t in self.taken if not requests and t.cap.metric == "requests"]
