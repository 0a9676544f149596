"""Admission on one process's counters: all or nothing, audit mode, budgets, settlement, headers,
window rollover and a store that cannot be reached."""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime

import pytest

from shared.config.model import Budget, Config, Limit, Price, RateLimit, Spend
from shared.errors import InsufficientQuota, RateLimitExceeded, Unavailable
from shared.limits.admission import Limiter, Ticket
from shared.limits.counters import CounterStore, CounterUnavailable, Grant, MemoryCounters
from shared.limits.rules import Facts, Rules
from shared.limits.tokens import Reservation
from shared.status import render

FACTS = Facts("user:okta/alice", "okta", frozenset(), "gpt-4o", None)
NOON = datetime(2026, 3, 4, 12, 0, 10, tzinfo=UTC).timestamp()


class Clock:
    def __init__(self, now: float = NOON) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class DownStore:
    """Counters that cannot be reached (what a store raises when its server is down)."""

    async def grant(self, bucket: str, window: str, asked: int, limit: int, *, minimum: int = 1) -> Grant:
        raise CounterUnavailable("counters at 127.0.0.1:1 did not answer")

    async def used(self, bucket: str, window: str) -> int:
        raise CounterUnavailable("counters at 127.0.0.1:1 did not answer")

    async def aclose(self) -> None:
        return None


def limiter(config: Config, clock: Clock | None = None,
            store: CounterStore | None = None) -> tuple[Limiter, Rules]:
    made = Limiter(store or MemoryCounters(), default_max_tokens=100, clock=clock or Clock())
    return made, made.rules("v1", config)


def per_minute(name: str, *limits: tuple[str, int], mode: str = "enforce") -> RateLimit:
    return RateLimit(name, tuple(Limit(metric, amount, "minute") for metric, amount in limits), mode=mode)


async def admit(made: Limiter, rules: Rules, tokens: int = 60) -> Ticket:
    return await made.admit(rules, FACTS, Reservation(prompt=tokens // 2, output=tokens - tokens // 2))


async def test_a_later_refusal_gives_back_what_earlier_rules_took() -> None:
    made, rules = limiter(Config(rate_limits=(per_minute("a", ("requests", 5)),
                                              per_minute("b", ("tokens", 100)))))
    await admit(made, rules)
    with pytest.raises(RateLimitExceeded) as refused:
        await admit(made, rules)
    assert "'b'" in refused.value.message and "100 tokens per minute" in refused.value.message
    assert refused.value.headers["x-ratelimit-remaining-requests"] == "4"      # a's take went back
    assert refused.value.headers["x-ratelimit-remaining-tokens"] == "40"
    assert refused.value.headers["Retry-After"] == "50"                        # to the minute's end


async def test_an_audit_rule_is_charged_and_logs_but_never_refuses(caplog: pytest.LogCaptureFixture) -> None:
    made, rules = limiter(Config(rate_limits=(per_minute("watch", ("requests", 1), mode="audit"),)))
    with caplog.at_level(logging.WARNING, "gateway.limits"):
        for _ in range(3):
            ticket = await admit(made, rules)
    assert ticket.headers() == {}
    assert [r.getMessage() for r in caplog.records] == [
        "audit: rate limit watch would refuse requests this minute (1 requests per minute)"]
    assert made.remaining("requests:watch", rules.rules[0].caps[0], NOON) == 0


@pytest.mark.parametrize(("usage", "remaining"), [
    ({"prompt_tokens": 4, "completion_tokens": 6, "total_tokens": 10}, 90),   # the real usage
    ({"input_tokens": 20, "output_tokens": 30}, 50),                           # the responses API's names
    (None, 40),                                                                # no usage: the reservation
    ({"prompt_tokens": 50, "completion_tokens": 30}, 20),                      # more than reserved: charged
])
async def test_settlement_replaces_the_reservation(usage: dict[str, int] | None, remaining: int) -> None:
    made, rules = limiter(Config(rate_limits=(per_minute("t", ("tokens", 100)),)))
    ticket = await admit(made, rules)
    ticket.settle(usage)
    ticket.settle({"total_tokens": 0})                                         # once only
    assert ticket.headers()["x-ratelimit-remaining-tokens"] == str(remaining)


async def test_a_request_that_used_nothing_gives_back_its_tokens_not_its_request() -> None:
    made, rules = limiter(Config(rate_limits=(per_minute("t", ("requests", 3), ("tokens", 100)),)))
    ticket = await admit(made, rules)
    ticket.cancel()
    assert ticket.headers()["x-ratelimit-remaining-tokens"] == "100"
    assert ticket.headers()["x-ratelimit-remaining-requests"] == "2"


async def test_a_request_larger_than_the_window_is_told_not_to_retry() -> None:
    made, rules = limiter(Config(rate_limits=(per_minute("t", ("tokens", 100)),)))
    with pytest.raises(RateLimitExceeded) as refused:
        await admit(made, rules, tokens=101)
    assert refused.value.headers["x-should-retry"] == "false"
    assert "reserves 101 tokens" in refused.value.message


async def test_the_headers_name_the_cap_with_the_least_left() -> None:
    config = Config(rate_limits=(per_minute("minute", ("tokens", 1000)),
                                 RateLimit("day", (Limit("tokens", 500, "day"),))))
    made, rules = limiter(config)
    headers = (await admit(made, rules, tokens=100)).headers()
    assert (headers["x-ratelimit-limit-tokens"], headers["x-ratelimit-remaining-tokens"]) == ("500", "400")
    assert headers["x-ratelimit-reset-tokens"] == "11h59m50s"
    assert "x-ratelimit-limit-requests" not in headers


async def test_a_new_window_starts_from_zero() -> None:
    clock = Clock()
    made, rules = limiter(Config(rate_limits=(per_minute("r", ("requests", 1)),)), clock)
    await admit(made, rules)
    with pytest.raises(RateLimitExceeded):
        await admit(made, rules)
    clock.now += 50
    assert (await admit(made, rules)).headers()["x-ratelimit-remaining-requests"] == "0"


BUDGET = Config(budgets=(Budget("b", (Spend(0.0001, "day"),)),), prices=(Price("gpt-4o", 1.0, 1.0),))


async def test_a_budget_reserves_the_price_and_settles_the_cost() -> None:
    made, rules = limiter(BUDGET)
    first = await admit(made, rules)                      # 60 tokens at 1 USD per million: 60 micro-USD
    first.settle({"prompt_tokens": 5, "completion_tokens": 5})
    await admit(made, rules)                              # 10 + 60 <= 100: only because the first settled
    with pytest.raises(InsufficientQuota) as refused:
        await admit(made, rules)                          # 70 + 60 > 100
    assert refused.value.headers["x-should-retry"] == "false"
    assert refused.value.message.startswith("budget 'b' is spent: 0.0001 USD per day")


async def test_a_budget_refuses_a_model_it_cannot_price() -> None:
    """Neither the configuration nor the built-in table prices a model named `house-chat`."""
    made, rules = limiter(Config(budgets=BUDGET.budgets))
    house = Facts(FACTS.user, FACTS.provider, FACTS.identities, "house-chat", FACTS.workspace)
    with pytest.raises(InsufficientQuota, match="no price") as refused:
        await made.admit(rules, house, Reservation(prompt=30, output=30))
    assert refused.value.headers["x-should-retry"] == "false"


@pytest.mark.parametrize(("config", "admitted"), [
    (Config(rate_limits=(per_minute("r", ("requests", 1)),)), True),                # limits fail open
    (Config(budgets=(Budget("b", (Spend(1, "day"),), on_store_error="allow"),), prices=BUDGET.prices), True),
    (Config(budgets=(Budget("b", (Spend(1, "day"),)),), prices=BUDGET.prices), False),   # deny
])
async def test_when_the_counters_cannot_be_reached(config: Config, admitted: bool) -> None:
    made, rules = limiter(config, store=DownStore())
    if admitted:
        await admit(made, rules)
        return
    with pytest.raises(Unavailable) as refused:
        await admit(made, rules)
    assert refused.value.public == "budget 'b' cannot be checked now; try again later"


async def test_status_names_the_buckets_near_their_limits() -> None:
    config = Config(rate_limits=(RateLimit("r", (Limit("requests", 5, "minute"),), per=("user",)),))
    made, rules = limiter(config)
    for _ in range(3):
        await admit(made, rules)
    assert made.status() == {}                                # 3 of 5: not near
    await admit(made, rules)
    assert made.status() == {"rate limit r": [{
        "bucket": "r{user=user:okta/alice}", "metric": "requests", "window": "minute", "used": 4, "limit": 5,
        "resets_in": "50s"}]}
    shown = render({"ok": True, "configuration": {}, "identity_providers": {}, "accounts": {},
                    "limits": made.status()})
    assert re.search(r"^rate limit r +r\{user=user:okta/alice\} +4 / 5 requests/minute +50s$", shown, re.M)


async def test_warming_loads_the_tokenizer_only_when_rules_exist() -> None:
    """The warm-up trigger and the keeper load what a rule's first request would wait for."""
    from shared.limits import encodings

    encodings._cache.clear()
    made, _ = limiter(Config())
    await made.warm(Config())
    assert encodings._cache == {}
    await made.warm(Config(rate_limits=(per_minute("r", ("requests", 5)),)))
    assert "o200k_base" in encodings._cache
