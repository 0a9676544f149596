"""Rate limits, budgets and prices in the configuration file: what parses, what is refused (naming the
field), what export writes back, and `apply`/`diff`/`export` of them through the CLI on Azurite."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from shared.config.document import to_document
from shared.config.model import Budget, Condition, Limit, Price, RateLimit, Spend
from shared.config.schema import ConfigError, parse
from tests.harness import ROOT, Tables

# What the rules name: a provider, an identity, a workspace and two models.
BASE: dict[str, Any] = {
    "identity_providers": [{"name": "okta-prod", "jwks_uri": "https://acme.okta.com/oauth2/v1/keys"}],
    "external_identities": [{"name": "partner-app", "identity_provider": "okta-prod"}],
    "accounts": [{"name": "aoai", "endpoint": "https://acme.openai.azure.com",
                  "auth": {"type": "api-key", "key_env": "GATEWAY_SECRET_AOAI"}}],
    "workspaces": [{"name": "research"}],
    "models": [{"name": "gpt-4o", "workspace": "research", "max_output_tokens": 4096,
                "targets": [{"account": "aoai", "deployment": "gpt-4o-prod"}]},
               {"name": "mini", "targets": [{"account": "aoai", "deployment": "mini"}]}],
}

# The product documentation's example, verbatim: the override names the user only, so it applies to that
# user on every model of the rule.
SECTIONS_YAML = """
rate_limits:
  - name: per-user
    when: {models: {in: [gpt-4o]}, principals: {not_in: ["user:okta-prod/00u-batch"]}}
    per: [user, model]
    limits: [{requests: 60, per: minute}, {tokens: 100000, per: minute}, {tokens: 2000000, per: day}]
    overrides: [{bucket: {user: "user:okta-prod/00u1abcd"}, limits: [{requests: 600, per: minute}]}]
    mode: enforce
budgets:
  - name: research-monthly
    when: {workspaces: {in: [research]}}
    per: [workspace]
    usd: {day: 50, month: 1000}
    on_store_error: deny
prices:
  - {model: gpt-4o, input: 2.5, cached_input: 1.25, output: 10.0, from: 2026-01-01}
"""
SECTIONS: dict[str, Any] = yaml.safe_load(SECTIONS_YAML)


def example(**sections: Any) -> dict[str, Any]:
    return copy.deepcopy({**BASE, **SECTIONS, **sections})


def test_the_documented_example_parses_to_its_rules() -> None:
    config = parse(example())
    assert config.rate_limits == (RateLimit(
        name="per-user",
        limits=(Limit("requests", 60, "minute"), Limit("tokens", 100_000, "minute"),
                Limit("tokens", 2_000_000, "day")),
        when=(Condition("principals", ("user:okta-prod/00u-batch",), negate=True),
              Condition("models", ("gpt-4o",))),
        per=("user", "model"),
        overrides=config.rate_limits[0].overrides,
        mode="enforce"),)
    override = config.rate_limits[0].overrides[0]
    assert dict(override.bucket) == {"user": "user:okta-prod/00u1abcd"}
    assert override.limits == (Limit("requests", 600, "minute"),)
    assert config.budgets == (Budget(name="research-monthly",
                                     spends=(Spend(50.0, "day"), Spend(1000.0, "month")),
                                     when=(Condition("workspaces", ("research",)),), per=("workspace",),
                                     on_store_error="deny"),)
    assert config.prices == (Price(model="gpt-4o", input=2.5, output=10.0, cached_input=1.25,
                                   effective="2026-01-01"),)
    assert {m.name: m.max_output_tokens for m in config.models} == {"gpt-4o": 4096, "mini": None}


def test_defaults_are_left_out_and_export_round_trips() -> None:
    minimal = example(rate_limits=[{"name": "shared", "limits": [{"tokens": 10, "per": "hour"}]}],
                      budgets=[{"name": "b", "usd": {"month": 0.5}}],
                      prices=[{"model": "mini", "input": 0, "output": 0.6}])
    config = parse(minimal)
    rule, budget, price = config.rate_limits[0], config.budgets[0], config.prices[0]
    assert (rule.when, rule.per, rule.overrides, rule.mode) == ((), (), (), "enforce")
    assert (budget.on_store_error, price.cached_input, price.effective) == ("deny", None, None)
    exported = to_document(config)
    for section in ("rate_limits", "budgets", "prices"):
        assert exported[section] == minimal[section]
        assert parse(exported) == config
    full = to_document(parse(example()))
    assert full["rate_limits"] == [{k: v for k, v in SECTIONS["rate_limits"][0].items() if k != "mode"}]
    assert full["budgets"] == [{k: v for k, v in SECTIONS["budgets"][0].items() if k != "on_store_error"}]
    assert full["prices"] == [{**SECTIONS["prices"][0], "from": "2026-01-01"}]
    assert parse(yaml.safe_load(yaml.safe_dump(full))) == parse(example())


RULE = ["rate_limits", 0]
BUDGET = ["budgets", 0]
PRICE = ["prices", 0]
OVERRIDE = [*RULE, "overrides", 0]
AT = "rate_limits[0].overrides[0]"
BAD: list[tuple[list[Any], Any, str]] = [
    # rate limits
    ([*RULE, "colour"], "red", "rate_limits[0].colour"),
    ([*RULE, "name"], "per user", "rate_limits[0].name"),
    ([*RULE, "limits"], [], "rate_limits[0].limits"),
    ([*RULE, "limits", 1], {"requests": 5, "tokens": 5, "per": "minute"}, "rate_limits[0].limits[1]"),
    ([*RULE, "limits", 1], {"per": "minute"}, "rate_limits[0].limits[1]"),
    ([*RULE, "limits", 1], {"tokens": 5}, "rate_limits[0].limits[1].per"),
    ([*RULE, "limits", 1, "per"], "week", "rate_limits[0].limits[1].per"),
    ([*RULE, "limits", 1, "per"], "day", "rate_limits[0].limits[2].per"),       # tokens per day twice
    ([*RULE, "limits", 0, "requests"], 0, "rate_limits[0].limits[0].requests"),
    ([*RULE, "limits", 0, "requests"], -5, "rate_limits[0].limits[0].requests"),
    ([*RULE, "limits", 0, "requests"], 1.5, "rate_limits[0].limits[0].requests"),
    ([*RULE, "limits", 0, "requests"], True, "rate_limits[0].limits[0].requests"),
    ([*RULE, "limits", 0, "requests"], "60", "rate_limits[0].limits[0].requests"),
    ([*RULE, "per"], ["user", "team"], "rate_limits[0].per[1]"),
    ([*RULE, "per"], ["user", "user"], "rate_limits[0].per[1]"),
    ([*RULE, "per"], ["user", "model", "workspace"], "rate_limits[0].per"),
    ([*RULE, "per"], "user", "rate_limits[0].per"),
    ([*RULE, "mode"], "shadow", "rate_limits[0].mode"),
    ([*RULE, "when", "teams"], {"in": ["x"]}, "rate_limits[0].when.teams"),
    ([*RULE, "when", "models"], {"in": ["gpt-4o"], "not_in": ["mini"]}, "rate_limits[0].when.models"),
    ([*RULE, "when", "models"], {}, "rate_limits[0].when.models"),
    ([*RULE, "when", "models"], {"in": []}, "rate_limits[0].when.models.in"),
    ([*RULE, "when", "models"], {"in": "gpt-4o"}, "rate_limits[0].when.models.in"),
    ([*RULE, "when", "models"], {"in": ["gpt-4o", "gpt-4o"]}, "rate_limits[0].when.models.in[1]"),
    ([*RULE, "when", "models"], {"in": ["gpt 4o"]}, "rate_limits[0].when.models.in[0]"),
    ([*RULE, "when", "models"], {"in": ["ghost"]}, "rate_limits[0].when.models.in[0]"),
    ([*RULE, "when", "workspaces"], {"not_in": ["ghost"]}, "rate_limits[0].when.workspaces.not_in[0]"),
    ([*RULE, "when", "identities"], {"in": ["ghost"]}, "rate_limits[0].when.identities.in[0]"),
    ([*RULE, "when", "providers"], {"in": ["ghost"]}, "rate_limits[0].when.providers.in[0]"),
    ([*RULE, "when", "principals"], {"not_in": ["bob"]}, "rate_limits[0].when.principals.not_in[0]"),
    ([*RULE, "when", "principals"], {"in": ["user:ghost/1"]}, "rate_limits[0].when.principals.in[0]"),
    ([*RULE, "when", "principals"], {"in": ["identity:ghost"]}, "rate_limits[0].when.principals.in[0]"),
    ([*OVERRIDE, "bucket"], {}, f"{AT}.bucket"),                         # names no dimension
    ([*OVERRIDE, "bucket", "model"], None, f"{AT}.bucket.model"),
    ([*OVERRIDE, "bucket", "workspace"], "research", f"{AT}.bucket.workspace"),
    ([*OVERRIDE, "bucket", "user"], "identity:partner-app", f"{AT}.bucket.user"),
    ([*OVERRIDE, "bucket", "user"], "user:ghost/1", f"{AT}.bucket.user"),
    ([*OVERRIDE, "bucket", "model"], "ghost", f"{AT}.bucket.model"),
    ([*OVERRIDE, "bucket", "model"], "gpt 4o", f"{AT}.bucket.model"),
    ([*OVERRIDE, "limits"], [], f"{AT}.limits"),
    ([*OVERRIDE, "limits", 0, "per"], "fortnight", f"{AT}.limits[0].per"),
    ([*OVERRIDE, "unknown"], 1, f"{AT}.unknown"),
    ([*RULE, "overrides", 1], SECTIONS["rate_limits"][0]["overrides"][0],
     "rate_limits[0].overrides[1].bucket"),                             # the same bucket twice
    ([*RULE, "per"], [], "rate_limits[0].overrides"),                   # one bucket: nothing to override
    (["rate_limits", 1], SECTIONS["rate_limits"][0], "rate_limits[1].name"),
    # budgets
    ([*BUDGET, "usd"], {}, "budgets[0].usd"),
    ([*BUDGET, "usd"], {"week": 5}, "budgets[0].usd.week"),
    ([*BUDGET, "usd", "day"], 0, "budgets[0].usd.day"),
    ([*BUDGET, "usd", "day"], -1, "budgets[0].usd.day"),
    ([*BUDGET, "usd", "day"], float("nan"), "budgets[0].usd.day"),
    ([*BUDGET, "usd", "day"], float("inf"), "budgets[0].usd.day"),
    ([*BUDGET, "usd", "month"], "1000", "budgets[0].usd.month"),
    ([*BUDGET, "on_store_error"], "retry", "budgets[0].on_store_error"),
    ([*BUDGET, "limits"], [], "budgets[0].limits"),
    ([*BUDGET, "when", "workspaces"], {"in": ["ghost"]}, "budgets[0].when.workspaces.in[0]"),
    ([*BUDGET, "per"], ["workspace", "team"], "budgets[0].per[1]"),
    # prices
    ([*PRICE, "model"], "ghost", "prices[0].model"),
    ([*PRICE, "input"], -0.5, "prices[0].input"),
    ([*PRICE, "output"], float("nan"), "prices[0].output"),
    ([*PRICE, "cached_input"], "cheap", "prices[0].cached_input"),
    ([*PRICE, "output"], KeyError, "prices[0].output"),
    ([*PRICE, "from"], "2026-02-30", "prices[0].from"),
    ([*PRICE, "from"], "01/01/2026", "prices[0].from"),
    ([*PRICE, "currency"], "EUR", "prices[0].currency"),
    (["prices", 1], {"model": "gpt-4o", "input": 1, "output": 2}, "prices[1].model"),
    # the model's output cap
    (["models", 0, "max_output_tokens"], 0, "models[0].max_output_tokens"),
    (["models", 0, "max_output_tokens"], 1.5, "models[0].max_output_tokens"),
]


def changed(path: list[Any], value: Any) -> dict[str, Any]:
    doc = example()
    target: Any = doc
    for key in path[:-1]:
        target = target[key]
    if value is KeyError:
        del target[path[-1]]
    elif isinstance(target, list) and path[-1] == len(target):
        target.append(copy.deepcopy(value))
    else:
        target[path[-1]] = copy.deepcopy(value)
    return doc


@pytest.mark.parametrize(("path", "value", "field"), BAD, ids=[f"{f}={v!r}" for _, v, f in BAD])
def test_each_invalid_value_is_refused_naming_its_field(path: list[Any], value: Any, field: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse(changed(path, value))
    assert caught.value.field == field, caught.value


@pytest.mark.parametrize(("path", "value"), [
    ([*RULE, "per"], ["identity"]),
    ([*RULE, "mode"], "audit"),
    ([*RULE, "when", "identities"], {"not_in": ["partner-app"]}),
    ([*RULE, "when", "providers"], {"in": ["okta-prod"]}),
    ([*RULE, "when", "principals"], {"in": ["identity:partner-app", "user:okta-prod/a/b:c"]}),
    ([*BUDGET, "on_store_error"], "allow"),
    ([*BUDGET, "usd"], {"day": 0.01}),
    ([*PRICE, "from"], "2024-02-29"),
    ([*PRICE, "input"], 0),
])
def test_each_valid_variant_round_trips(path: list[Any], value: Any) -> None:
    doc = changed(path, value)
    if path[:3] == [*RULE, "per"]:
        doc["rate_limits"][0]["overrides"] = [{"bucket": {"identity": "partner-app"},
                                               "limits": [{"tokens": 1, "per": "day"}]}]
    config = parse(doc)
    assert parse(to_document(config)) == config


def cli(tables: Tables, *args: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    return subprocess.run([sys.executable, "-m", "shared", *args], cwd=ROOT, capture_output=True, text=True,
                          env={**base, **tables.env}, timeout=60)


def test_apply_diff_export_and_prune_carry_the_rules(tables: Tables, tmp_path: Path) -> None:
    source = tmp_path / "gateway.yaml"
    source.write_text(yaml.safe_dump(BASE) + SECTIONS_YAML, encoding="utf-8")
    diff = cli(tables, "diff", "-f", str(source))
    assert diff.returncode == 1, diff.stderr
    assert "+ rate limit per-user" in diff.stdout and "+ price gpt-4o" in diff.stdout
    assert tables.load().rate_limits == ()

    applied = cli(tables, "apply", "-f", str(source))
    assert applied.returncode == 0, applied.stderr
    assert "+ budget research-monthly" in applied.stdout
    assert tables.load() == parse(example())

    out = tmp_path / "exported.yaml"
    exported = cli(tables, "export", "-o", str(out))
    assert exported.returncode == 0, exported.stderr
    assert parse(yaml.safe_load(out.read_text(encoding="utf-8"))) == parse(example())
    assert cli(tables, "diff", "-f", str(out)).stdout.strip() == "no changes"

    # a changed limit shows old and new; a model that goes takes its price and the rule naming it
    smaller = example(prices=[], budgets=[])
    smaller["models"] = [m for m in smaller["models"] if m["name"] != "mini"]
    smaller["rate_limits"][0]["limits"][0]["requests"] = 30
    source.write_text(json.dumps(smaller, default=str), encoding="utf-8")
    changed_plan = cli(tables, "apply", "-f", str(source), "--prune", "--yes")
    assert changed_plan.returncode == 0, changed_plan.stderr
    assert "~ rate limit per-user: limits[0].requests: 60 -> 30" in changed_plan.stdout
    assert "- price gpt-4o" in changed_plan.stdout and "- budget research-monthly" in changed_plan.stdout
    assert changed_plan.stdout.index("- price gpt-4o") < changed_plan.stdout.index("- model mini")
    assert tables.load() == parse(smaller)


def test_a_file_whose_rule_names_a_missing_model_changes_nothing(tables: Tables, tmp_path: Path) -> None:
    tables.apply(example())
    before = tables.load()
    bad = example(budgets=[])
    bad["rate_limits"][0]["when"]["models"]["in"] = ["gpt-5"]
    source = tmp_path / "bad.json"
    source.write_text(json.dumps(bad, default=str), encoding="utf-8")
    result = cli(tables, "apply", "-f", str(source), "--prune", "--yes")
    assert result.returncode == 2
    assert "rate_limits[0].when.models.in[0]: unknown model 'gpt-5'" in result.stderr
    assert tables.load() == before
