"""Which rules a request meets and its buckets: `when` on each field, `per` buckets, overrides."""

from __future__ import annotations

import pytest

from shared.config.model import Budget, Condition, Config, Limit, Override, RateLimit, Spend
from shared.limits.admission import Limiter
from shared.limits.counters import MemoryCounters
from shared.limits.rules import Cap, Facts, Rules

MINUTE = (Limit("requests", 10, "minute"),)


def facts(*, user: str = "alice", identities: tuple[str, ...] = ("partner", "batch"),
          model: str = "gpt-4o", workspace: str | None = "research") -> Facts:
    principal = f"user:okta/{user}"
    return Facts(principal, "okta", frozenset(identities), model, workspace)


def rules(*items: RateLimit | Budget) -> Rules:
    return Rules(Config(rate_limits=tuple(i for i in items if isinstance(i, RateLimit)),
                        budgets=tuple(i for i in items if isinstance(i, Budget))))


@pytest.mark.parametrize(("field", "values", "negate", "request_facts", "meets"), [
    ("principals", ("user:okta/alice",), False, facts(), True),
    ("principals", ("identity:partner",), False, facts(), True),
    ("principals", ("user:okta/bob",), False, facts(), False),
    ("principals", ("user:okta/bob",), True, facts(), True),
    ("principals", ("identity:batch",), True, facts(), False),
    ("identities", ("partner",), False, facts(), True),
    ("identities", ("identity:partner",), False, facts(), True),
    ("identities", ("other",), False, facts(), False),
    ("identities", ("other",), True, facts(), True),
    ("identities", ("batch",), True, facts(), False),
    ("identities", ("partner",), False, facts(identities=()), False),
    ("identities", ("partner",), True, facts(identities=()), True),
    ("providers", ("okta",), False, facts(), True),
    ("providers", ("entra",), False, facts(), False),
    ("providers", ("okta",), True, facts(), False),
    ("models", ("gpt-4o", "embed"), False, facts(), True),
    ("models", ("embed",), False, facts(), False),
    ("models", ("embed",), True, facts(), True),
    ("workspaces", ("research",), False, facts(), True),
    ("workspaces", ("research",), True, facts(), False),
    ("workspaces", ("research",), False, facts(workspace=None), False),
    ("workspaces", ("research",), True, facts(workspace=None), True),
])
def test_a_condition_on_each_field(field: str, values: tuple[str, ...], negate: bool, request_facts: Facts,
                                   meets: bool) -> None:
    rule = RateLimit("r", MINUTE, when=(Condition(field, values, negate),))
    assert bool(rules(rule).match(request_facts)) is meets


def test_every_condition_must_hold() -> None:
    rule = RateLimit("r", MINUTE, when=(Condition("models", ("gpt-4o",)), Condition("providers", ("entra",))))
    assert rules(rule).match(facts()) == ()


@pytest.mark.parametrize(("per", "request_facts", "buckets"), [
    ((), facts(), ["r"]),
    (("user",), facts(), ["r{user=user:okta/alice}"]),
    (("model",), facts(), ["r{model=gpt-4o}"]),
    (("workspace",), facts(), ["r{workspace=research}"]),
    (("user", "model"), facts(), ["r{user=user:okta/alice,model=gpt-4o}"]),
    # every identity is a bucket of its own, and each must admit the request
    (("identity",), facts(), ["r{identity=batch}", "r{identity=partner}"]),
    (("identity", "model"), facts(identities=("a",)), ["r{identity=a,model=gpt-4o}"]),
    # no value for a dimension: the rule does not count the request
    (("identity",), facts(identities=()), []),
    (("workspace",), facts(workspace=None), []),
    # a value cannot spell another bucket
    (("user", "model"), facts(user="x,model=gpt-4o}", model="m"),
     ["r{user=user:okta/x%2Cmodel%3Dgpt-4o%7D,model=m}"]),
])
def test_per_buckets(per: tuple[str, ...], request_facts: Facts, buckets: list[str]) -> None:
    assert [m.bucket for m in rules(RateLimit("r", MINUTE, per=per)).match(request_facts)] == buckets


@pytest.mark.parametrize(("bucket", "request_facts", "requests"), [
    ({"user": "user:okta/alice"}, facts(), 600),
    ({"user": "user:okta/alice"}, facts(user="bob"), 10),
    ({"identity": "identity:partner"}, facts(identities=("partner",)), 600),
    ({"identity": "partner"}, facts(identities=("partner",)), 600),
    ({"identity": "partner"}, facts(identities=("other",)), 10),
])
def test_an_override_replaces_the_limits_of_its_bucket(bucket: dict[str, str], request_facts: Facts,
                                                       requests: int) -> None:
    per = tuple(bucket)
    rule = RateLimit("r", MINUTE, per=per, overrides=(Override(bucket, (Limit("requests", 600, "minute"),)),))
    (match,) = rules(rule).match(request_facts)
    assert match.caps == (Cap("requests", requests, "minute"),)
    assert match.counters == (f"requests:{match.bucket}",)


def test_budgets_meet_requests_in_micro_usd() -> None:
    budget = Budget("b", (Spend(50, "day"), Spend(1000.5, "month")), per=("workspace",))
    (match,) = rules(budget).match(facts())
    assert match.rule.kind == "budget" and match.rule.deny_on_store_error
    assert match.caps == (Cap("usd", 50_000_000, "day"), Cap("usd", 1_000_500_000, "month"))


def test_rules_compile_once_per_configuration_version() -> None:
    limiter = Limiter(MemoryCounters(), default_max_tokens=100)
    config = Config(rate_limits=(RateLimit("r", MINUTE),))
    compiled = limiter.rules("v1", config)
    assert limiter.rules("v1", config) is compiled
    assert compiled.match(facts()) is compiled.match(facts())      # nothing built per request
    assert limiter.rules("v2", Config()) is not compiled and not limiter.rules("v2", Config())


@pytest.mark.parametrize(("user", "model", "requests"), [
    ("alice", "gpt-4o", 600),       # the override names the user only: every model of hers
    ("alice", "mini", 600),
    ("bob", "gpt-4o", 10),
])
def test_an_override_naming_some_dimensions_applies_to_every_bucket_it_fits(user: str, model: str,
                                                                         requests: int) -> None:
    rule = RateLimit("r", MINUTE, per=("user", "model"),
                     overrides=(Override({"user": "user:okta/alice"}, (Limit("requests", 600, "minute"),)),))
    (match,) = rules(rule).match(facts(user=user, model=model))
    assert match.caps == (Cap("requests", requests, "minute"),)
