"""Reads the rate limit, budget and price sections of the configuration file (docs/configuration.md),
naming the field at fault, and lists what each of their items names, so that the file and /manage
check those references the same way."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from typing import Any

from .fields import (
    ConfigError,
    parse_principal,
    principal_reference,
    read_count,
    read_name,
    read_number,
    read_record,
    read_text,
)
from .model import (
    BUDGET_WINDOWS,
    LIMIT_METRICS,
    LIMIT_WINDOWS,
    PER_DIMENSIONS,
    WHEN_FIELDS,
    Budget,
    Condition,
    Limit,
    Override,
    Price,
    RateLimit,
    Spend,
    frozen_mapping,
)

MODES = ("enforce", "audit")
ON_STORE_ERROR = ("deny", "allow")
MAX_USD = 1e9           # one budget window; spend is counted in micro-USD, exact far beyond this
MAX_PRICE = 1e6         # USD per million tokens
DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
# The section each `when` key and `per` dimension names items of; principals and users name the
# identity provider or external identity they belong to instead (principal_reference).
WHEN_SECTIONS = {"identities": "external_identities", "providers": "identity_providers",
                 "models": "models", "workspaces": "workspaces"}
DIMENSION_SECTIONS = {"identity": "external_identities", "model": "models", "workspace": "workspaces"}

Reference = tuple[str, str, str]    # (field within the item, section, name)


def _one_of(value: Any, where: str, allowed: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in allowed:
        raise ConfigError(where, f"must be one of {', '.join(allowed)}")
    return value


def _values(raw: Any, where: str, field: str) -> tuple[str, ...]:
    if not isinstance(raw, list) or not raw:
        raise ConfigError(where, "must be a non-empty list")
    out: list[str] = []
    for i, value in enumerate(raw):
        at = f"{where}[{i}]"
        item = (parse_principal(str(read_text(value, at)), at) if field == "principals"
                else read_name(value, at))
        if item in out:
            raise ConfigError(at, "is listed twice")
        out.append(item)
    return tuple(out)


def read_when(raw: Any, where: str) -> tuple[Condition, ...]:
    """`{<field>: {in: [...]} | {not_in: [...]}}`, in WHEN_FIELDS order whatever the file's, so two
    equal rules compare equal."""
    if raw is None:
        return ()
    d = read_record(raw, where, (), WHEN_FIELDS)
    out: list[Condition] = []
    for field in WHEN_FIELDS:
        if field not in d:
            continue
        at = f"{where}.{field}"
        test = read_record(d[field], at, (), ("in", "not_in"))
        if len(test) != 1:
            raise ConfigError(at, "must have exactly one of in, not_in")
        ((op, values),) = test.items()
        out.append(Condition(field, _values(values, f"{at}.{op}", field), negate=op == "not_in"))
    return tuple(out)


def read_per(raw: Any, where: str) -> tuple[str, ...]:
    """Up to two distinct dimensions a rule counts separately; [] is one bucket shared by all."""
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise ConfigError(where, f"must be a list of up to two of {', '.join(PER_DIMENSIONS)}")
    out: list[str] = []
    for i, dimension in enumerate(raw):
        out.append(_one_of(dimension, f"{where}[{i}]", PER_DIMENSIONS))
        if out.count(dimension) > 1:
            raise ConfigError(f"{where}[{i}]", "is listed twice")
    if len(out) > 2:
        raise ConfigError(where, "must name at most two dimensions")
    return tuple(out)


def read_limits(raw: Any, where: str) -> tuple[Limit, ...]:
    """`[{requests|tokens: N, per: minute|hour|day}, ...]`, at most one per metric and window."""
    if not isinstance(raw, list) or not raw:
        raise ConfigError(where, "must be a non-empty list")
    out: list[Limit] = []
    for i, item in enumerate(raw):
        at = f"{where}[{i}]"
        d = read_record(item, at, ("per",), LIMIT_METRICS)
        metrics = [m for m in LIMIT_METRICS if m in d]
        if len(metrics) != 1:
            raise ConfigError(at, f"must have exactly one of {', '.join(LIMIT_METRICS)}")
        metric = metrics[0]
        amount = read_count(d[metric], f"{at}.{metric}")
        window = _one_of(d["per"], f"{at}.per", LIMIT_WINDOWS)
        if any(limit.metric == metric and limit.window == window for limit in out):
            raise ConfigError(f"{at}.per", f"a second {metric} limit per {window}")
        out.append(Limit(metric, amount, window))
    return tuple(out)


def _bucket(raw: Any, where: str, per: tuple[str, ...]) -> Mapping[str, str]:
    """Values for some of the rule's `per` dimensions, and for nothing else: the override applies to
    every bucket with those values (`{user: ...}` on a rule per user and model: that user, any model)."""
    if not isinstance(raw, Mapping):
        raise ConfigError(where, "must be a mapping")
    if not raw:
        raise ConfigError(where, f"must name a value for at least one of the rule's per ({', '.join(per)})")
    for key in raw:
        if key not in per:
            raise ConfigError(f"{where}.{key}", f"is not one of the rule's per ({', '.join(per)})")
    values: dict[str, str] = {}
    for dimension in per:
        at = f"{where}.{dimension}"
        if dimension not in raw:
            continue
        if raw[dimension] is None:
            raise ConfigError(at, "must be a value (leave the dimension out to match any)")
        if dimension == "user":
            values[dimension] = parse_principal(str(read_text(raw[dimension], at)), at)
            if not values[dimension].startswith("user:"):
                raise ConfigError(at, "must be user:<provider>/<unique id>")
        else:
            values[dimension] = read_name(raw[dimension], at)
    return frozen_mapping(values)


def _overrides(raw: Any, where: str, per: tuple[str, ...]) -> tuple[Override, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise ConfigError(where, "must be a list")
    if raw and not per:
        raise ConfigError(where, "a rule without per has one bucket: change its limits instead")
    out: list[Override] = []
    for i, item in enumerate(raw):
        at = f"{where}[{i}]"
        d = read_record(item, at, ("bucket", "limits"), ())
        bucket = _bucket(d["bucket"], f"{at}.bucket", per)
        if any(dict(o.bucket) == dict(bucket) for o in out):
            raise ConfigError(f"{at}.bucket", "a second override of the same bucket")
        out.append(Override(bucket, read_limits(d["limits"], f"{at}.limits")))
    return tuple(out)


def read_rate_limit(raw: Any, where: str) -> RateLimit:
    d = read_record(raw, where, ("name", "limits"), ("when", "per", "overrides", "mode"))
    name = read_name(d["name"], f"{where}.name")
    per = read_per(d.get("per"), f"{where}.per")
    return RateLimit(name=name, limits=read_limits(d["limits"], f"{where}.limits"),
                     when=read_when(d.get("when"), f"{where}.when"), per=per,
                     overrides=_overrides(d.get("overrides"), f"{where}.overrides", per),
                     mode=_one_of(d.get("mode", "enforce"), f"{where}.mode", MODES))


def read_budget(raw: Any, where: str) -> Budget:
    d = read_record(raw, where, ("name", "usd"), ("when", "per", "on_store_error"))
    name = read_name(d["name"], f"{where}.name")
    usd = read_record(d["usd"], f"{where}.usd", (), BUDGET_WINDOWS)
    if not usd:
        raise ConfigError(f"{where}.usd", f"must set {' or '.join(BUDGET_WINDOWS)} (or both)")
    spends = tuple(Spend(read_number(usd[w], f"{where}.usd.{w}", positive=True, most=MAX_USD), w)
                   for w in BUDGET_WINDOWS if w in usd)
    return Budget(name=name, spends=spends, when=read_when(d.get("when"), f"{where}.when"),
                  per=read_per(d.get("per"), f"{where}.per"),
                  on_store_error=_one_of(d.get("on_store_error", "deny"), f"{where}.on_store_error",
                                         ON_STORE_ERROR))


def _date(value: Any, where: str) -> str | None:
    """An ISO date, YYYY-MM-DD (YAML reads an unquoted one as a date already)."""
    if value is None:
        return None
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, str) and DATE_RE.match(value):
        try:
            return dt.date.fromisoformat(value).isoformat()
        except ValueError:
            pass
    raise ConfigError(where, "must be a date, YYYY-MM-DD")


def read_price(raw: Any, where: str) -> Price:
    d = read_record(raw, where, ("model", "input", "output"), ("cached_input", "from"))
    model = read_name(d["model"], f"{where}.model")
    cached = d.get("cached_input")
    return Price(model=model,
                 input=read_number(d["input"], f"{where}.input", positive=False, most=MAX_PRICE),
                 output=read_number(d["output"], f"{where}.output", positive=False, most=MAX_PRICE),
                 cached_input=None if cached is None else read_number(cached, f"{where}.cached_input",
                                                                      positive=False, most=MAX_PRICE),
                 effective=_date(d.get("from"), f"{where}.from"))


def _named(field: str, value: str, section: str | None) -> Reference:
    """A value of `when.principals` or of a `user` bucket names its provider or external identity."""
    return (field, section, value) if section else (field, *principal_reference(value))


def references(section: str, item: Any) -> list[Reference]:
    """Everything a rate limit, budget or price names, with the field naming it (relative to the item)."""
    if section == "prices":
        return [("model", "models", item.model)]
    out: list[Reference] = []
    for condition in item.when:
        op = "not_in" if condition.negate else "in"
        out += [_named(f"when.{condition.field}.{op}[{j}]", value, WHEN_SECTIONS.get(condition.field))
                for j, value in enumerate(condition.values)]
    for i, override in enumerate(getattr(item, "overrides", ())):
        out += [_named(f"overrides[{i}].bucket.{dimension}", value, DIMENSION_SECTIONS.get(dimension))
                for dimension, value in override.bucket.items()]
    return out


PARSERS = {"rate_limits": read_rate_limit, "budgets": read_budget, "prices": read_price}
