"""Which rate limits and budgets a request meets, and its bucket in each.

A configuration's `rate_limits` and `budgets` are compiled once per configuration version into `Rules`;
a request then costs a set lookup per condition. `when` conditions read the request's `Facts`: its
principals (the user and each external identity), identities, provider, model and the model's
workspace. `per` names the dimensions a rule counts separately; the bucket is a readable key such as
`per-user{user=user:okta/00u1,model=gpt-4o}`, with every value percent-escaped so that no value can
forge another bucket (the counter stores hash it before using it as a storage key). A caller with
several external identities meets a rule `per: [identity]` once per identity (each bucket must admit
it), so gaining an identity never escapes a limit; a request with no value for a `per` dimension (no
identity, a model without a workspace) is not counted by that rule. An override replaces the limits of
the one bucket it names.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import quote

from ..config.model import Budget, Condition, Config, Limit, RateLimit

if TYPE_CHECKING:
    from ..auth.identities import Principal
    from ..config.model import Model

MICRO = 1_000_000
CACHE_ENTRIES = 4096
"""Distinct (caller, model) combinations whose matches are remembered per configuration version."""
_SAFE = ":/@._-+"        # readable in a bucket key; `{`, `}`, `,`, `=` and `%` are always escaped


@dataclass(frozen=True, slots=True)
class Facts:
    """What the `when` conditions and `per` dimensions of a rule read from one request."""

    user: str                            # user:<provider>/<unique id>
    provider: str
    identities: frozenset[str]           # external identity names
    model: str
    workspace: str | None

    @classmethod
    def of(cls, principal: Principal, model: Model) -> Facts:
        return cls(principal.user, principal.provider, principal.identities, model.name, model.workspace)

    @property
    def principals(self) -> frozenset[str]:
        """The user and identity:<name> for each identity (read only when matches are not cached)."""
        return frozenset({self.user, *(f"identity:{name}" for name in self.identities)})


@dataclass(frozen=True, slots=True)
class Cap:
    """One limit a bucket must respect: `amount` units of `metric` (requests, tokens, or micro-USD for
    `usd`) per fixed UTC `window`."""

    metric: str
    amount: int
    window: str


@dataclass(frozen=True, slots=True)
class Test:
    field: str
    values: frozenset[str]
    negate: bool

    def holds(self, facts: Facts) -> bool:
        seen = _values(facts, self.field)
        return seen.isdisjoint(self.values) if self.negate else not seen.isdisjoint(self.values)


@dataclass(frozen=True, slots=True)
class Rule:
    """A rate limit (`kind` "rate limit") or a budget, ready to match."""

    kind: str
    name: str
    when: tuple[Test, ...]
    per: tuple[str, ...]
    caps: tuple[Cap, ...]
    # (values, caps): the caps that replace `caps` in every bucket whose values include `values` (an
    # override may name some of the rule's dimensions only); the first that fits wins
    overrides: tuple[tuple[frozenset[tuple[str, str]], tuple[Cap, ...]], ...]
    audit: bool = False                             # count and log, never refuse
    deny_on_store_error: bool = False               # budgets: refuse when the counters are unreachable

    def buckets(self, facts: Facts) -> list[tuple[str, tuple[Cap, ...]]]:
        """Each bucket the request falls in, with the caps that apply there."""
        if not self.per:
            return [(self.name, self.caps)]
        choices = [_dimension(facts, dim) for dim in self.per]
        found = []
        for combo in itertools.product(*choices):
            pairs = tuple(zip(self.per, combo, strict=True))
            caps = next((caps for values, caps in self.overrides if values <= set(pairs)), self.caps)
            found.append((bucket_key(self.name, pairs), caps))
        return found


@dataclass(frozen=True, slots=True)
class Match:
    rule: Rule
    bucket: str
    caps: tuple[Cap, ...]
    counters: tuple[str, ...]       # per cap: the counter's name, `<metric>:<bucket>`

    @classmethod
    def of(cls, rule: Rule, bucket: str, caps: tuple[Cap, ...]) -> Match:
        return cls(rule, bucket, caps, tuple(f"{cap.metric}:{bucket}" for cap in caps))


def _identity_name(value: str) -> str:
    return value.removeprefix("identity:")


def _values(facts: Facts, field: str) -> frozenset[str]:
    if field == "principals":
        return facts.principals
    if field == "identities":
        return facts.identities
    if field == "providers":
        return frozenset((facts.provider,))
    if field == "models":
        return frozenset((facts.model,))
    return frozenset((facts.workspace,)) if facts.workspace else frozenset()


def _dimension(facts: Facts, dim: str) -> list[str]:
    if dim == "user":
        return [facts.user]
    if dim == "identity":
        return sorted(facts.identities)
    if dim == "model":
        return [facts.model]
    return [facts.workspace] if facts.workspace else []


def bucket_key(rule: str, pairs: Iterable[tuple[str, str]]) -> str:
    """`rule{dim=value,...}`: readable, and unambiguous however the values are spelled."""
    inner = ",".join(f"{dim}={quote(value, safe=_SAFE)}" for dim, value in pairs)
    return f"{rule}{{{inner}}}"


def _test(condition: Condition) -> Test:
    values = condition.values
    if condition.field == "identities":
        values = tuple(_identity_name(v) for v in values)
    return Test(condition.field, frozenset(values), condition.negate)


def _caps(limits: tuple[Limit, ...]) -> tuple[Cap, ...]:
    return tuple(Cap(limit.metric, limit.amount, limit.window) for limit in limits)


def _rate_limit(rule: RateLimit) -> Rule:
    overrides = tuple(
        (frozenset((dim, _identity_name(v) if dim == "identity" else v) for dim, v in o.bucket.items()),
         _caps(o.limits))
        for o in rule.overrides)
    return Rule("rate limit", rule.name, tuple(_test(c) for c in rule.when), rule.per, _caps(rule.limits),
                overrides, audit=rule.mode == "audit")


def _budget(budget: Budget) -> Rule:
    caps = tuple(Cap("usd", round(spend.usd * MICRO), spend.window) for spend in budget.spends)
    return Rule("budget", budget.name, tuple(_test(c) for c in budget.when), budget.per, caps,
                (), deny_on_store_error=budget.on_store_error != "allow")


class Rules:
    """Every rule and budget of one configuration version, compiled; `match` is what a request meets."""

    def __init__(self, config: Config) -> None:
        self.rules: tuple[Rule, ...] = (*map(_rate_limit, config.rate_limits), *map(_budget, config.budgets))
        self._cache: dict[tuple[str, frozenset[str], str], tuple[Match, ...]] = {}

    def __bool__(self) -> bool:
        return bool(self.rules)

    def counts_tokens(self, facts: Facts) -> bool:
        """Some cap the request meets counts tokens or money: only then is its prompt counted and its
        output capped (a rule on requests alone leaves the body as the caller sent it)."""
        return any(cap.metric != "requests" for match in self.match(facts) for cap in match.caps)

    def match(self, facts: Facts) -> tuple[Match, ...]:
        """Every (rule, bucket) the request meets, with the caps that apply in that bucket."""
        key = (facts.user, facts.identities, facts.model)      # the rest follows from these
        found = self._cache.get(key)
        if found is None:
            found = tuple(Match.of(rule, bucket, caps)
                          for rule in self.rules if all(test.holds(facts) for test in rule.when)
                          for bucket, caps in rule.buckets(facts))
            if len(self._cache) >= CACHE_ENTRIES:
                self._cache.clear()
            self._cache[key] = found
        return found
